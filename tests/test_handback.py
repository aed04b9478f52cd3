"""The hand-back contract: a released connection is clean, reset, or closed.

Against a real redis-server: every test leaves a connection in some state a
caller abandoned (cancelled SELECT, WATCH, MULTI, a pending BLPOP) and checks
that the next holder, or shared traffic, never sees it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from clustermgr import create_connection, create_pool, errors


def _client_db(info: bytes) -> int:
    fields = dict(part.split(b"=", 1) for part in info.split() if b"=" in part)
    return int(fields[b"db"])


async def test_cancelled_select_is_tracked_from_its_reply(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        pending = conn.execute("SELECT", 3)
        pending.cancel()
        await conn.execute("PING")
        assert conn.db == 3
        assert _client_db(await conn.execute("CLIENT", "INFO")) == 3
        refused = conn.execute("SELECT", 100000)
        refused.cancel()
        await conn.execute("PING")
        assert conn.db == 3  # an error reply changes nothing
    finally:
        conn.close()
        await conn.wait_closed()


async def test_pool_never_serves_from_the_db_of_a_cancelled_select(
    redis_standalone: Any,
) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=1)
    try:
        conn = await pool.acquire()
        pending = conn.execute("SELECT", 4)
        pending.cancel()
        pool.release(conn)
        assert _client_db(await pool.execute("CLIENT", "INFO")) == 0
        async with pool.get() as again:
            assert again.db == 0
            assert _client_db(await again.execute("CLIENT", "INFO")) == 0
    finally:
        pool.close()
        await pool.wait_closed()


async def test_failed_pool_select_leaves_the_pool_usable(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, minsize=2, maxsize=2)
    try:
        with pytest.raises(errors.ReplyError, match="out of range"):
            await pool.select(100000)
        assert pool.db == 0
        assert await pool.execute("PING") == b"PONG"
        await pool.clear()
        assert await pool.execute("PING") == b"PONG"  # new connections handshake fine
        assert _client_db(await pool.execute("CLIENT", "INFO")) == 0
    finally:
        pool.close()
        await pool.wait_closed()


async def test_timed_out_blpop_through_the_pool_pops_nothing(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=2)
    try:
        await pool.execute("DEL", "hb:q1")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.execute("BLPOP", "hb:q1", 0), 0.2)
        await pool.execute("RPUSH", "hb:q1", "item")
        await asyncio.sleep(0.1)
        assert await pool.execute("LRANGE", "hb:q1", 0, -1) == [b"item"]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_blpop_cancelled_on_an_acquired_connection_is_not_reused(
    redis_standalone: Any,
) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=1)
    try:
        await pool.execute("DEL", "hb:q2")
        with await pool as conn, pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(conn.execute("BLPOP", "hb:q2", 0), 0.1)
        # maxsize=1: a PING that queued behind the BLPOP would never return.
        assert await asyncio.wait_for(pool.execute("PING"), 2) == b"PONG"
        await pool.execute("RPUSH", "hb:q2", "item")
        await asyncio.sleep(0.1)
        assert await pool.execute("LRANGE", "hb:q2", 0, -1) == [b"item"]
        assert conn.closed
    finally:
        pool.close()
        await pool.wait_closed()


async def test_watch_left_on_release_does_not_abort_the_next_transaction(
    redis_standalone: Any,
) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=1)
    other = await create_connection(redis_standalone.address)
    try:
        async with pool.get() as first:
            await first.execute("WATCH", "hb:w")
        await other.execute("SET", "hb:w", "changed")
        async with pool.get() as second:
            assert second is first
            await second.execute("MULTI")
            await second.execute("SET", "hb:w", "mine")
            assert await second.execute("EXEC") == [b"OK"]
        assert await other.execute("GET", "hb:w") == b"mine"
    finally:
        other.close()
        await other.wait_closed()
        pool.close()
        await pool.wait_closed()


async def test_multi_left_open_is_discarded_and_the_connection_reused(
    redis_standalone: Any,
) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=1)
    try:
        await pool.execute("DEL", "hb:m")
        async with pool.get() as first:
            await first.execute("MULTI")
            await first.execute("SET", "hb:m", "queued")
        async with pool.get() as second:
            assert second is first and not second.closed
            assert not second.in_transaction
            assert await second.execute("GET", "hb:m") is None  # not QUEUED, not applied
    finally:
        pool.close()
        await pool.wait_closed()


async def test_select_inside_multi_counts_when_exec_runs_it(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        conn.execute("MULTI")
        conn.execute("SELECT", 2)
        assert await conn.execute("EXEC") == [b"OK"]
        assert conn.db == 2 == _client_db(await conn.execute("CLIENT", "INFO"))
        conn.execute("MULTI")
        conn.execute("SELECT", 3)
        assert await conn.execute("DISCARD") == b"OK"
        assert conn.db == 2 == _client_db(await conn.execute("CLIENT", "INFO"))
    finally:
        conn.close()
        await conn.wait_closed()


async def _prepare(pool: Any, name: str) -> None:
    await pool.execute("DEL", "hb:src", "hb:dst", "hb:z", "hb:s")
    if name == "XREADGROUP":
        await pool.execute("XGROUP", "CREATE", "hb:s", "g", "$", "MKSTREAM")


BLOCKING = {
    "BLPOP": ("BLPOP", "hb:src", 0),
    "BRPOP": ("BRPOP", "hb:src", 0),
    "BLMOVE": ("BLMOVE", "hb:src", "hb:dst", "LEFT", "RIGHT", 0),
    "BZPOPMIN": ("BZPOPMIN", "hb:z", 0),
    "XREAD": ("XREAD", "BLOCK", 0, "STREAMS", "hb:s", "$"),
    "XREADGROUP": ("XREADGROUP", "GROUP", "g", "c", "BLOCK", 0, "STREAMS", "hb:s", ">"),
    "WAIT": ("WAIT", 1, 0),
}


async def _left_untouched(pool: Any, name: str) -> None:
    """Add data the given-up command would have taken; check it is still there."""
    await pool.execute("RPUSH", "hb:src", "item")
    await pool.execute("ZADD", "hb:z", 1, "member")
    await pool.execute("XADD", "hb:s", "*", "f", "v")
    await asyncio.sleep(0.1)
    assert await pool.execute("LRANGE", "hb:src", 0, -1) == [b"item"]
    assert await pool.execute("ZCARD", "hb:z") == 1
    if name == "XREADGROUP":
        assert (await pool.execute("XPENDING", "hb:s", "g"))[0] == 0


@pytest.mark.parametrize("name", list(BLOCKING))
async def test_given_up_blocking_command_takes_nothing_and_blocks_nobody(
    redis_standalone: Any, name: str
) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=1)
    try:
        await _prepare(pool, name)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.execute(*BLOCKING[name]), 0.2)
        # maxsize=1: anything queued behind the blocked command would hang.
        assert await asyncio.wait_for(pool.execute("PING"), 2) == b"PONG"
        await _left_untouched(pool, name)
        await _prepare(pool, name)
        async with pool.get() as conn:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.execute(*BLOCKING[name]), 0.2)
            assert conn.closed
        assert await asyncio.wait_for(pool.execute("PING"), 2) == b"PONG"
        await _left_untouched(pool, name)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_given_up_batch_with_a_blocking_command_takes_nothing(
    redis_standalone: Any,
) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=1)
    try:
        await _prepare(pool, "BLPOP")
        batch = [("PING",), ("BLPOP", "hb:src", 0)]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.execute_batch(batch), 0.2)
        assert await asyncio.wait_for(pool.execute("PING"), 2) == b"PONG"
        await _left_untouched(pool, "BLPOP")
    finally:
        pool.close()
        await pool.wait_closed()


async def test_readwrite_left_on_a_readonly_pool_is_reset(redis_cluster: Any) -> None:
    async def readonly(conn: Any) -> None:
        await conn.execute("READONLY")

    pool = await create_pool(redis_cluster.startup_nodes[0], maxsize=1, on_connect=readonly)
    try:
        async with pool.get() as first:
            assert first.state.readonly
            await first.execute("READWRITE")
            assert not first.state.readonly
        async with pool.get() as second:
            assert second is first and second.state.readonly
            flags = dict(
                part.split(b"=", 1) for part in (await second.execute("CLIENT", "INFO")).split()
            )[b"flags"]
            assert b"r" in flags
    finally:
        pool.close()
        await pool.wait_closed()


async def _watch_then_transact(pool: Any, side: Any, key: str) -> None:
    """Holder 1 WATCHes ``key`` and leaves; ``key`` changes; holder 2's EXEC must run."""
    async with pool.get("WATCH", (key,)) as first:
        await first.execute("WATCH", key)
    await side(key)
    async with pool.get("SET", (key,)) as second:
        assert second is first
        await second.execute("MULTI")
        await second.execute("SET", key, "mine")
        assert await second.execute("EXEC") == [b"OK"]


async def test_watch_left_on_a_cluster_pool_connection(redis_cluster: Any) -> None:
    from clustermgr.cluster import create_cluster_pool

    pool = await create_cluster_pool(redis_cluster.startup_nodes, minsize=0, maxsize=1)
    try:
        async def change(key: str) -> None:
            await pool.execute("SET", key, "changed")

        await _watch_then_transact(pool, change, "hb:cluster-w")
    finally:
        pool.close()
        await pool.wait_closed()


async def test_watch_left_on_a_sentinel_pool_connection(redis_sentinel: Any) -> None:
    from clustermgr.sentinel import create_sentinel_pool

    pool = await create_sentinel_pool(
        redis_sentinel.sentinel_addresses, redis_sentinel.service, maxsize=1
    )
    try:
        async def change(key: str) -> None:
            await pool.execute("SET", key, "changed")

        await _watch_then_transact(pool, change, "hb:sentinel-w")
    finally:
        pool.close()
        await pool.wait_closed()


async def test_cancelled_pool_select_leaves_no_connection_on_another_db(
    redis_standalone: Any,
) -> None:
    pool = await create_pool(redis_standalone.address, minsize=2, maxsize=2)
    try:
        selecting = asyncio.ensure_future(pool.select(2))
        await asyncio.sleep(0)  # SELECT is on the wire
        selecting.cancel()
        await asyncio.sleep(0.1)
        for _ in range(4):  # shared commands rotate over both connections
            assert _client_db(await pool.execute("CLIENT", "INFO")) == pool.db
    finally:
        pool.close()
        await pool.wait_closed()


async def test_blocking_reply_lost_to_a_late_give_up_is_logged(
    redis_standalone: Any, caplog: Any
) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        await conn.execute("DEL", "hb:late")
        await conn.execute("RPUSH", "hb:late", "item")
        popped = conn.execute("BLPOP", "hb:late", 0)  # served at once
        time.sleep(0.1)  # noqa: ASYNC251 - block the loop: the reply waits unread
        popped.cancel()
        await asyncio.sleep(0.05)
        assert conn.closed
        assert "may have served it" in caplog.text
    finally:
        conn.close()
        await conn.wait_closed()
