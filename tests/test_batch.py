"""execute_batch: many commands in one write, one future per batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clustermgr import create_connection, create_pool, errors


async def test_connection_batch_replies_in_order_with_errors_in_place(
    redis_standalone: Any,
) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        replies = await conn.execute_batch([
            ("SET", "batch:s", "x"), ("GET", "batch:s"), ("LPUSH", "batch:s", "y"),
            ("INCR", "batch:n"), ("GET", "batch:missing"),
        ])
        assert replies[:2] == [b"OK", b"x"]
        assert isinstance(replies[2], errors.WrongTypeError)
        assert isinstance(replies[3], int) and replies[4] is None
        assert await conn.execute_batch([("GET", "batch:s")], encoding="utf-8") == ["x"]
        assert await conn.execute_batch([]) == []
        # Interleaves with ordinary commands in FIFO order.
        first = conn.execute("INCR", "batch:order")
        batch = conn.execute_batch([("INCR", "batch:order")] * 3)
        last = conn.execute("INCR", "batch:order")
        start = await first
        assert await batch == [start + 1, start + 2, start + 3]
        assert await last == start + 4
        with pytest.raises(TypeError, match="changes connection state"):
            conn.execute_batch([("SELECT", 1)])
        with pytest.raises(TypeError, match="NoneType"):
            conn.execute_batch([("SET", "k", None)])
    finally:
        conn.close()
        await conn.wait_closed()


async def test_connection_batch_fails_whole_on_loss(local_standalone_factory: Any) -> None:
    server = local_standalone_factory()
    conn = await create_connection(server.address)
    try:
        pending = conn.execute_batch([("BLPOP", "batch:never", 0), ("PING",)])
        await asyncio.sleep(0.05)
        server.kill()
        with pytest.raises(errors.ConnectionClosedError) as info:
            await pending
        assert info.value.may_have_executed
    finally:
        conn.close()
        await conn.wait_closed()


async def test_pool_batch(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, maxsize=2)
    try:
        replies = await pool.execute_batch([("SET", f"pb:{i}", i) for i in range(1000)])
        assert replies == [b"OK"] * 1000
        assert await pool.execute_batch([("GET", "pb:7"), ("BLPOP", "pb:list", 0.1)]) == [
            b"7", None,
        ]
    finally:
        pool.close()
        await pool.wait_closed()
