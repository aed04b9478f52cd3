"""ConnectionsPool against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from clustermgr import ConnectionsPool, create_pool, errors


async def test_maxsize_two_serves_500_concurrent_callers(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=2)
    try:
        async def caller(i: int) -> bytes:
            await pool.execute("SET", f"many:{i}", i)
            return await pool.execute("GET", f"many:{i}")  # type: ignore[no-any-return]

        results = await asyncio.gather(*(caller(i) for i in range(500)))
        assert results == [str(i).encode() for i in range(500)]
        assert pool.size <= 2
    finally:
        pool.close()
        await pool.wait_closed()


async def test_exclusive_acquire_is_fifo_and_bounded(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, minsize=2, maxsize=2)
    try:
        order: list[int] = []

        async def user(i: int) -> None:
            async with pool.get() as conn:
                order.append(i)
                await conn.execute("PING")

        await asyncio.gather(*(user(i) for i in range(200)))
        assert order == list(range(200))
        assert pool.size <= 2
        with await pool as conn:
            assert await conn.execute("PING") == b"PONG"
        assert pool.freesize == pool.size
    finally:
        pool.close()
        await pool.wait_closed()


async def test_acquire_timeout(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, maxsize=1, acquire_timeout=0.2)
    try:
        conn = await pool.acquire()
        with pytest.raises(errors.TimeoutError, match="no connection"):
            await pool.acquire()
        pool.release(conn)
        again = await pool.acquire()
        pool.release(again)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_blocking_command_does_not_stall_others(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=3)
    try:
        await pool.execute("DEL", "bq")
        popped = asyncio.ensure_future(pool.execute("BLPOP", "bq", 5))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        assert await pool.execute("PING") == b"PONG"
        assert time.monotonic() - started < 0.5
        await pool.execute("RPUSH", "bq", "item")
        assert await popped == [b"bq", b"item"]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_transaction_commands_need_exclusive_connection(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address)
    try:
        with pytest.raises(errors.RouteError, match=r"pool\.get"):
            pool.execute("MULTI")
        async with pool.get() as conn:
            await conn.execute("MULTI")
            await conn.execute("SET", "ptx", 1)
            assert await conn.execute("EXEC") == [b"OK"]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_broken_connections_are_replaced(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, minsize=2, maxsize=4, name="victim")
    try:
        await pool.execute("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")
        await asyncio.sleep(0.1)
        results = await asyncio.gather(*(pool.execute("PING") for _ in range(20)))
        assert results == [b"PONG"] * 20
    finally:
        pool.close()
        await pool.wait_closed()


async def test_dirty_connections_are_not_reused(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=2)
    try:
        conn = await pool.acquire()
        await conn.execute_pubsub("SUBSCRIBE", "dirty:chan")
        pool.release(conn)
        await asyncio.sleep(0)
        assert conn.closed
        async with pool.get() as fresh:
            assert fresh is not conn and not fresh.in_pubsub
    finally:
        pool.close()
        await pool.wait_closed()


async def test_select_and_clear(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, minsize=2)
    try:
        await pool.select(5)
        assert pool.db == 5
        await pool.execute("SET", "in5", 1)
        async with pool.get() as conn:
            assert conn.db == 5 and await conn.execute("GET", "in5") == b"1"
        await pool.clear()
        assert pool.freesize == 0
        assert await pool.execute("GET", "in5") == b"1"  # new connection, same db
    finally:
        pool.close()
        await pool.wait_closed()


async def test_pool_select_bad_db_types_and_values(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address)
    try:
        with pytest.raises(TypeError, match="db must be an int"):
            await pool.select("1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="0 or more"):
            await pool.select(-1)
        assert pool.db == 0
    finally:
        pool.close()
        await pool.wait_closed()


async def test_closed_pool_raises(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, maxsize=1)
    conn = await pool.acquire()
    waiter = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    pool.close()
    with pytest.raises(errors.PoolClosedError):
        await waiter
    with pytest.raises(errors.PoolClosedError):
        await pool.execute("PING")  # fails when awaited, as aioredis' pool
    with pytest.raises(errors.PoolClosedError):
        await pool.acquire()
    assert conn.closed
    await pool.wait_closed()


async def test_bad_pool_arguments() -> None:
    with pytest.raises(ValueError, match="minsize"):
        ConnectionsPool(("127.0.0.1", 1), minsize=5, maxsize=2)
    with pytest.raises(ValueError, match="maxsize"):
        ConnectionsPool(("127.0.0.1", 1), maxsize=0)
    with pytest.raises(TypeError, match="pool_cls"):
        await create_pool(("127.0.0.1", 1), pool_cls=dict)  # type: ignore[arg-type]


async def test_unreachable_server_raises_connect_error(local_standalone_factory: Any) -> None:
    server = local_standalone_factory()
    address = server.address
    server.kill()
    with pytest.raises(errors.ConnectError):
        await create_pool(address, create_connection_timeout=1)


@pytest.mark.parametrize("name", ["create_connection_timeout", "acquire_timeout"])
async def test_pool_timeouts_must_be_positive(name: str) -> None:
    for bad in (0, -2):
        with pytest.raises(ValueError, match=name):
            ConnectionsPool(("127.0.0.1", 1), **{name: bad})


async def test_minsize_at_maxclients_is_a_clear_error(local_standalone_factory: Any) -> None:
    server = local_standalone_factory()
    admin = await create_pool(server.address, minsize=1, maxsize=1)
    try:
        await admin.execute("CONFIG", "SET", "maxclients", 3)
        with pytest.raises(errors.MaxClientsError):
            await create_pool(server.address, minsize=5, maxsize=5)
        # The pool that failed closed what it opened: the slots are free again.
        small = await create_pool(server.address, minsize=2, maxsize=2)
        assert await small.execute("PING") == b"PONG"
        small.close()
        await small.wait_closed()
    finally:
        admin.close()
        await admin.wait_closed()


async def test_pool_auth_reauthenticates_every_connection(local_standalone_factory: Any) -> None:
    server = local_standalone_factory(password="old")
    pool = await create_pool(server.address, password="old", minsize=2, maxsize=3)
    try:
        held = await pool.acquire()
        await pool.execute("CONFIG", "SET", "requirepass", "new")
        assert await pool.auth("new") is True
        await pool.execute("ACL", "SETUSER", "default", "resetpass", ">new")  # old one gone
        await pool.execute("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        await asyncio.sleep(0.1)
        assert await pool.execute("PING") == b"PONG"  # reconnects with the new password
        pool.release(held)
        with pytest.raises(errors.AuthError):
            await pool.auth("wrong")
        assert await pool.execute("PING") == b"PONG"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_fills_running_together_open_minsize_once(redis_standalone: Any) -> None:
    pool = ConnectionsPool(redis_standalone.address, minsize=2, maxsize=5)
    try:
        await asyncio.gather(pool.fill(), pool.fill(), pool.fill())
        assert pool.size == 2 and pool.freesize == 2
    finally:
        pool.close()
        await pool.wait_closed()
