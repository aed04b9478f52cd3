"""Nothing waits forever by default: connect, handshake and reply bounds, blocking commands.

Paused servers are real redis-servers stopped with SIGSTOP (resumed in
``finally``); a server that accepts and never answers is the fake server.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fake_server import FakeServer

from clustermgr import create_connection, create_pool
from clustermgr.bounds import (
    CONNECT_TIMEOUT,
    DEFAULT,
    READ_TIMEOUT,
    blocking_wait,
    check_interval,
    resolve,
    within,
)
from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import ConnectionClosedError, TimeoutError
from clustermgr.sentinel import create_sentinel_pool
from clustermgr.testing import LocalServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A redis-server of this test's own, resumed if the test left it paused."""
    with LocalServer(name="bounds") as node:
        try:
            yield node
        finally:
            if node.is_paused:
                node.resume()


# -- resolving an option ------------------------------------------------------------


def test_default_none_and_numbers_resolve() -> None:
    assert resolve("read_timeout", DEFAULT, 10.0) == 10.0
    assert resolve("read_timeout", None, 10.0) is None
    assert resolve("read_timeout", 2, 10.0) == 2.0
    assert repr(DEFAULT) == "DEFAULT"


@pytest.mark.parametrize("value", [math.nan, -1, 0, 0.0, math.inf, -math.inf])
def test_bad_numbers_are_refused_naming_the_option(value: float) -> None:
    with pytest.raises(ValueError, match="read_timeout"):
        resolve("read_timeout", value, 10.0)


@pytest.mark.parametrize("value", ["5", True, b"1", [1]])
def test_non_numbers_are_refused_naming_the_option(value: Any) -> None:
    with pytest.raises(TypeError, match="create_connection_timeout"):
        resolve("create_connection_timeout", value, 5.0)


_NOWHERE = ("127.0.0.1", 1)  # nothing is reached: refused before connecting


@pytest.mark.parametrize("option", ["timeout", "read_timeout"])
@pytest.mark.parametrize("value", [math.nan, -1.0, 0, "2", math.inf])
async def test_create_connection_refuses_bad_bounds(option: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=rf"{option} must"):
        await create_connection(_NOWHERE, **{option: value})


@pytest.mark.parametrize("option", ["create_connection_timeout", "read_timeout"])
@pytest.mark.parametrize("value", [math.nan, -1.0, 0, "2"])
async def test_create_pool_refuses_bad_bounds(option: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=rf"{option} must"):
        await create_pool(_NOWHERE, **{option: value})


@pytest.mark.parametrize("option", ["connect_timeout", "read_timeout"])
@pytest.mark.parametrize("value", [math.nan, -1.0, 0, "2"])
async def test_create_cluster_pool_refuses_bad_bounds(option: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=rf"{option} must"):
        await create_cluster_pool([_NOWHERE], **{option: value})


@pytest.mark.parametrize("value", [None, math.nan, -1.0, 0, "2"])
async def test_create_cluster_pool_refuses_a_bad_retry_timeout(value: Any) -> None:
    """retry_timeout bounds every cluster command: it cannot be turned off."""
    with pytest.raises((ValueError, TypeError), match="retry_timeout must"):
        await create_cluster_pool([_NOWHERE], retry_timeout=value)


@pytest.mark.parametrize("option", ["create_connection_timeout", "read_timeout"])
@pytest.mark.parametrize("value", [math.nan, -1.0, 0, "2"])
async def test_create_sentinel_pool_refuses_bad_bounds(option: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=rf"{option} must"):
        await create_sentinel_pool([_NOWHERE], "svc", **{option: value})


# -- the defaults -------------------------------------------------------------------


async def test_handshake_to_a_silent_server_ends_at_the_default_connect_bound() -> None:
    """AUTH to a server that accepts and never answers: TimeoutError at 5 s."""
    async with FakeServer(handshake_silent=True) as fake:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError, match=r"timed out after 5\.0s"):
            await asyncio.wait_for(create_connection(fake.address, password="pw"), 20)
        assert CONNECT_TIMEOUT - 0.5 < loop.time() - started < CONNECT_TIMEOUT + 2


async def test_pool_handshake_to_a_silent_server_ends_at_the_default_connect_bound() -> None:
    async with FakeServer(handshake_silent=True) as fake:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(create_pool(fake.address, password="pw"), 20)
        assert loop.time() - started < CONNECT_TIMEOUT + 2


async def test_a_hanging_on_connect_ends_at_the_default_connect_bound() -> None:
    """create_pool's on_connect counts against the connect bound (5 s by default)."""
    never = asyncio.Event()

    async def on_connect(conn: Any) -> None:
        await never.wait()

    async with FakeServer() as fake:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError, match=r"timed out after 5\.0s"):
            await asyncio.wait_for(create_pool(fake.address, on_connect=on_connect), 20)
        assert loop.time() - started < CONNECT_TIMEOUT + 2


async def test_explicit_none_turns_the_connect_bound_off() -> None:
    async with FakeServer(handshake_silent=True) as fake:
        connecting = asyncio.ensure_future(
            create_connection(fake.address, password="pw", timeout=None))
        done, _ = await asyncio.wait([connecting], timeout=CONNECT_TIMEOUT + 1)
        assert not done  # still in the handshake: no bound
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)


async def test_url_timeout_still_wins_over_the_default() -> None:
    async with FakeServer(handshake_silent=True) as fake:
        url = f"redis://:pw@127.0.0.1:{fake.port}?timeout=0.3"
        with pytest.raises(TimeoutError, match=r"after 0\.3s"):
            await asyncio.wait_for(create_connection(url), 5)


async def test_reply_from_a_paused_server_ends_at_the_default_reply_bound(
    server: LocalServer,
) -> None:
    """No read_timeout given: a GET to a SIGSTOPped server fails after ~10 s
    (the command may have run), instead of waiting for the server forever."""
    conn = await create_connection(server.address)
    try:
        await asyncio.to_thread(server.pause)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionClosedError) as failure:
            await asyncio.wait_for(conn.execute("GET", "k"), READ_TIMEOUT + 10)
        waited = loop.time() - started
        assert READ_TIMEOUT - 0.5 < waited < READ_TIMEOUT + 2, waited
        assert failure.value.may_have_executed is True
        assert "read_timeout" in str(failure.value)
    finally:
        await asyncio.to_thread(server.resume)
        conn.close()
        await conn.wait_closed()


async def test_pool_commands_get_the_default_reply_bound(server: LocalServer) -> None:
    pool = await create_pool(server.address)
    try:
        await asyncio.to_thread(server.pause)
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(pool.execute("GET", "k"), READ_TIMEOUT + 3)
    finally:
        await asyncio.to_thread(server.resume)
        pool.close()
        await pool.wait_closed()


# -- blocking commands ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        (b"BLPOP", ("a", "b", 30), 30.0),
        (b"BRPOP", ("a", b"1.5"), 1.5),
        (b"BLPOP", ("a", 0), math.inf),
        (b"BRPOPLPUSH", ("a", "b", "2"), 2.0),
        (b"BLMOVE", ("a", "b", "LEFT", "RIGHT", 3), 3.0),
        (b"BZPOPMIN", ("z", 4), 4.0),
        (b"BZPOPMAX", ("z", "0"), math.inf),
        (b"BLMPOP", (5, 2, "a", "b", "LEFT"), 5.0),
        (b"BZMPOP", ("0.5", 1, "z", "MIN"), 0.5),
        (b"WAIT", (1, 500), 0.5),
        (b"WAIT", (1, 0), math.inf),
        (b"WAITAOF", (1, 0, 250), 0.25),
        (b"XREAD", ("COUNT", 1, "BLOCK", 2000, "STREAMS", "s", "$"), 2.0),
        (b"XREAD", ("block", 0, "STREAMS", "s", "$"), math.inf),
        (b"XREADGROUP", ("GROUP", "g", "c", "BLOCK", "100", "STREAMS", "s", ">"), 0.1),
        (b"XREAD", ("COUNT", 1, "STREAMS", "s", "0"), None),
        (b"XREAD", ("STREAMS", "block", "0"), None),  # a stream named "block"
        (b"XREAD", (b"COUNT", 2, b"Block", b"10", b"STREAMS", b"s", b"$"), 0.01),
        (b"BLPOP", (), None),
    ],
)
def test_blocking_wait_reads_the_timeout_argument(
    name: bytes, args: tuple[Any, ...], expected: float | None
) -> None:
    assert blocking_wait(name, args) == expected


async def test_blocking_command_is_not_cut_at_the_reply_bound(server: LocalServer) -> None:
    conn = await create_connection(server.address, read_timeout=0.3)
    try:
        assert await asyncio.wait_for(conn.execute("BLPOP", "nothing", 1.5), 5) is None
        assert await asyncio.wait_for(
            conn.execute("XREAD", "BLOCK", 1200, "STREAMS", "nostream", "$"), 5) is None
    finally:
        conn.close()
        await conn.wait_closed()


async def test_blocking_command_on_a_paused_server_ends_after_its_timeout_plus_the_bound(
    server: LocalServer,
) -> None:
    """BLPOP 1 with read_timeout 0.5 on a SIGSTOPped server: ends at ~1.5 s, not never."""
    conn = await create_connection(server.address, read_timeout=0.5)
    try:
        await asyncio.to_thread(server.pause)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionClosedError) as failure:
            await asyncio.wait_for(conn.execute("BLPOP", "nothing", 1), 10)
        assert 1.4 < loop.time() - started < 3.0
        assert failure.value.may_have_executed is True
    finally:
        await asyncio.to_thread(server.resume)
        conn.close()
        await conn.wait_closed()


async def test_batch_holding_a_blocking_command_is_bounded_by_its_timeout(
    server: LocalServer,
) -> None:
    """A batch [SET, BLPOP 1] on a paused server ends at ~1 s + the reply bound."""
    conn = await create_connection(server.address, read_timeout=0.5)
    try:
        await asyncio.to_thread(server.pause)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(
                conn.execute_batch([("SET", "a", "1"), ("BLPOP", "nothing", 1)]), 10)
        assert 1.4 < loop.time() - started < 3.0
    finally:
        await asyncio.to_thread(server.resume)
        conn.close()
        await conn.wait_closed()


async def test_blocking_forever_is_not_bounded(server: LocalServer) -> None:
    """BLPOP 0 asks to wait forever: a paused server does not cut it at the bound."""
    conn = await create_connection(server.address, read_timeout=0.3)
    try:
        await asyncio.to_thread(server.pause)
        waiting = conn.execute("BLPOP", "nothing", 0)
        done, _ = await asyncio.wait([waiting], timeout=1.5)
        assert not done
        assert not conn.closed
    finally:
        await asyncio.to_thread(server.resume)
        conn.close()
        await conn.wait_closed()
        await asyncio.gather(waiting, return_exceptions=True)


@pytest.mark.parametrize(
    ("read_timeout", "budget", "expected"),
    [(10.0, 15.0, 10.0), (None, 15.0, 14.0), (20.0, 15.0, 14.0), (None, 3.0, 2.4), (2.0, 3.0, 2.0)],
)
def test_reply_bound_within_a_budget_is_caught_by_then(
    read_timeout: float | None, budget: float, expected: float
) -> None:
    """A cluster command's budget caps its node connections' reply bound so
    that the stall check (every min(bound/4, 1 s)) fires within the budget."""
    bound = within(read_timeout, budget)
    assert bound == pytest.approx(expected)
    assert bound + check_interval(bound) <= budget + 1e-9
