"""FaultProxy: a TCP proxy in front of a real server that drops, stalls, delays, cuts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clustermgr import create_connection, create_pool
from clustermgr.errors import ConnectError, ConnectionClosedError
from clustermgr.testing import FaultProxy, LocalStandalone, RespConnection


@pytest.fixture
def proxy(redis_standalone: LocalStandalone) -> Iterator[FaultProxy]:
    with FaultProxy(redis_standalone.address) as running:
        yield running


def _key() -> str:
    return f"proxy:{uuid.uuid4().hex}"


async def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_sync_client_through_proxy(proxy: FaultProxy) -> None:
    with RespConnection(proxy.host, proxy.port, timeout=5) as conn:
        assert conn.command("PING") == "PONG"
    assert proxy.accepted == 1
    assert proxy.bytes_forwarded["to_server"] > 0
    assert proxy.bytes_forwarded["to_client"] > 0
    assert proxy.state == "pass"
    assert "pass" in repr(proxy)


async def test_pass_through_and_url(proxy: FaultProxy, redis_standalone: LocalStandalone) -> None:
    conn = await create_connection(proxy.url)
    try:
        key = _key()
        assert await conn.execute("SET", key, "v") == b"OK"
        assert await conn.execute("GET", key) == b"v"
        assert proxy.connections == 1
        assert redis_standalone.server.command("GET", key) == "v"
    finally:
        conn.close()
        await conn.wait_closed()
    await _eventually(lambda: proxy.connections == 0)


async def test_drop_resets_connections_and_pool_reconnects(proxy: FaultProxy) -> None:
    pool = await create_pool(proxy.address, minsize=2, maxsize=2)
    try:
        assert await pool.execute("PING") == b"PONG"
        # A command stuck behind a stall is in flight when the path is dropped.
        proxy.stall()
        pending = pool.execute("SET", _key(), "x")
        await asyncio.sleep(0.05)
        assert proxy.drop() == 2
        with pytest.raises(ConnectionClosedError) as info:
            await pending
        assert info.value.may_have_executed is True  # it was written: outcome unknown
        proxy.pass_through()
        assert proxy.dropped == 2
        # The dropped connections are gone; the pool opens fresh ones.
        assert await asyncio.wait_for(pool.execute("PING"), 5) == b"PONG"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_refuse_resets_new_connections(proxy: FaultProxy) -> None:
    proxy.refuse()
    assert proxy.state == "refusing"
    with pytest.raises((ConnectError, ConnectionClosedError)):
        conn = await create_connection(proxy.address, name="refused", timeout=2)
        conn.close()
        await conn.wait_closed()
    assert proxy.refused >= 1
    proxy.refuse(False)
    conn = await create_connection(proxy.address, name="accepted", timeout=2)
    try:
        assert await conn.execute("PING") == b"PONG"
    finally:
        conn.close()
        await conn.wait_closed()


async def test_stall_is_half_open_and_heals_in_order(proxy: FaultProxy) -> None:
    conn = await create_connection(proxy.address)
    try:
        key = _key()
        with proxy.stalled():
            assert proxy.state == "stalled"
            futures = [conn.execute("INCR", key) for _ in range(5)]
            done, _ = await asyncio.wait(futures, timeout=0.3)
            assert not done  # nothing comes back...
            assert not conn.closed  # ...and the connection stays up (half-open)
            # New connections are accepted but stalled too.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(create_connection(proxy.address, name="n"), 0.3)
        assert await asyncio.wait_for(asyncio.gather(*futures), 5) == [1, 2, 3, 4, 5]
    finally:
        conn.close()
        await conn.wait_closed()


async def test_latency_delays_round_trips(proxy: FaultProxy) -> None:
    conn = await create_connection(proxy.address)
    try:
        with proxy.delayed(0.1):
            assert proxy.latency == 0.1
            started = time.monotonic()
            replies = await asyncio.gather(*(conn.execute("PING") for _ in range(20)))
            elapsed = time.monotonic() - started
        assert replies == [b"PONG"] * 20
        # 100 ms each way; pipelined commands are delayed together, not one by one.
        assert 0.2 <= elapsed < 1.5
        assert proxy.latency == 0
    finally:
        conn.close()
        await conn.wait_closed()


async def test_cut_to_client_holds_replies_but_commands_run(
    proxy: FaultProxy, redis_standalone: LocalStandalone
) -> None:
    conn = await create_connection(proxy.address)
    try:
        key = _key()
        with proxy.cut_off("to_client"):
            assert proxy.state == "cut to_client"
            future = conn.execute("SET", key, "applied")
            await _eventually(lambda: redis_standalone.server.command("GET", key) == "applied")
            done, _ = await asyncio.wait([future], timeout=0.2)
            assert not done
        assert await asyncio.wait_for(future, 5) == b"OK"
    finally:
        conn.close()
        await conn.wait_closed()


async def test_cut_to_server_holds_commands(
    proxy: FaultProxy, redis_standalone: LocalStandalone
) -> None:
    conn = await create_connection(proxy.address)
    try:
        key = _key()
        proxy.cut("to_server")
        future = conn.execute("SET", key, "late")
        await asyncio.sleep(0.2)
        assert redis_standalone.server.command("GET", key) is None
        assert not future.done()
        proxy.resume("to_server")
        assert await asyncio.wait_for(future, 5) == b"OK"
        assert redis_standalone.server.command("GET", key) == "late"
    finally:
        conn.close()
        await conn.wait_closed()


async def test_server_down_behind_proxy(
    local_standalone_factory: Callable[..., LocalStandalone],
) -> None:
    server = local_standalone_factory()
    with FaultProxy(server.address, name="down") as proxy:
        conn = await create_connection(proxy.address)
        try:
            assert await conn.execute("PING") == b"PONG"
            server.kill()
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(conn.execute("PING"), 5)
        finally:
            conn.close()
            await conn.wait_closed()
        # Nothing listens behind the proxy: new connections are reset.
        with pytest.raises((ConnectError, ConnectionClosedError)):
            other = await create_connection(proxy.address, name="x", timeout=2)
            other.close()
            await other.wait_closed()
        server.restart()
        conn = await create_connection(proxy.address, timeout=2)
        try:
            assert await conn.execute("PING") == b"PONG"
        finally:
            conn.close()
            await conn.wait_closed()


def test_bad_arguments_and_lifecycle(redis_standalone: LocalStandalone) -> None:
    proxy = FaultProxy(redis_standalone.address)
    with pytest.raises(RuntimeError, match="not started"):
        proxy.stall()
    proxy.start()
    try:
        assert proxy.start() is proxy
        bad: Any = "sideways"
        with pytest.raises(ValueError):
            proxy.cut(bad)
        with pytest.raises(ValueError):
            proxy.set_latency(-1)
        proxy.retarget(redis_standalone.address)
    finally:
        proxy.close()
    proxy.close()  # idempotent
    assert "stopped" in repr(proxy)
