"""aioredis 1.x ``Redis.multi_exec()`` over clustermgr connections: encodings, errors, WATCH."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from clustermgr import create_connection, create_pool, errors, register_with_aioredis

aioredis = pytest.importorskip("aioredis")

register_with_aioredis()


@pytest.fixture(params=["connection", "pool"])
async def redis(request: Any, redis_standalone: Any) -> AsyncIterator[Any]:
    if request.param == "connection":
        backend: Any = await create_connection(redis_standalone.address)
    else:
        backend = await create_pool(redis_standalone.address, maxsize=2)
    client = aioredis.Redis(backend)
    yield client
    client.close()
    await client.wait_closed()


async def test_each_command_keeps_its_encoding_inside_exec(redis: Any) -> None:
    await redis.set("tx:enc", "v")
    tr = redis.multi_exec()
    as_text = tr.get("tx:enc", encoding="utf-8")
    as_bytes = tr.get("tx:enc")
    assert await tr.execute() == ["v", b"v"]
    assert await as_text == "v"
    assert await as_bytes == b"v"


async def test_error_reply_inside_exec_raises_multiexecerror(redis: Any) -> None:
    await redis.set("tx:str", "v")
    await redis.delete("tx:n")
    tr = redis.multi_exec()
    ok = tr.incr("tx:n")
    bad = tr.lpush("tx:str", "x")
    with pytest.raises(aioredis.MultiExecError):
        await tr.execute()
    assert await ok == 1
    with pytest.raises(aioredis.ReplyError, match="WRONGTYPE"):
        await bad


async def test_watch_conflict_raises_watchvariableerror(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    other = await create_connection(redis_standalone.address)
    try:
        redis = aioredis.Redis(conn)
        await redis.watch("tx:w")
        await other.execute("SET", "tx:w", "changed")
        tr = redis.multi_exec()
        fut = tr.set("tx:w", "mine")
        with pytest.raises(aioredis.MultiExecError):
            await tr.execute()
        with pytest.raises(aioredis.WatchVariableError):
            await fut
        assert await other.execute("GET", "tx:w") == b"changed"
        assert not conn.in_transaction
    finally:
        for c in (conn, other):
            c.close()
            await c.wait_closed()


async def test_exec_on_connection_per_command_encoding_and_watch(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address, encoding="utf-8")
    other = await create_connection(redis_standalone.address)
    try:
        await conn.execute("SET", "tx:c", "v")
        await conn.execute("MULTI")
        await conn.execute("GET", "tx:c", encoding=None)
        await conn.execute("GET", "tx:c")
        assert await conn.execute("EXEC") == [b"v", "v"]
        await conn.execute("MULTI")
        await conn.execute("GET", "tx:c", encoding=None)
        assert await conn.execute("EXEC", encoding="utf-8") == ["v"]
        await conn.execute("WATCH", "tx:c")
        await other.execute("SET", "tx:c", "w")
        await conn.execute("MULTI")
        await conn.execute("GET", "tx:c")
        with pytest.raises(errors.WatchVariableError) as info:
            await conn.execute("EXEC")
        assert info.value.may_have_executed is False
        assert await conn.execute("PING") == "PONG"
    finally:
        for c in (conn, other):
            c.close()
            await c.wait_closed()


async def test_exec_slots_stay_aligned_with_select_and_ping_queued(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address, encoding="utf-8")
    try:
        await conn.execute("SET", "tx:a", "v")
        await conn.execute("MULTI")
        await conn.execute("SET", "tx:a", "w")
        await conn.execute("SELECT", 1)
        await conn.execute("PING", encoding=None)
        await conn.execute("SELECT", 0)
        await conn.execute("GET", "tx:a", encoding=None)
        assert await conn.execute("EXEC") == ["OK", "OK", b"PONG", "OK", b"w"]
        assert conn.db == 0
    finally:
        conn.close()
        await conn.wait_closed()


async def test_exec_slots_of_a_batch_inside_multi(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        await conn.execute("SET", "tx:b", "v")
        await conn.execute("MULTI")
        await conn.execute("PING", encoding="utf-8")
        assert await conn.execute_batch([("GET", "tx:b"), ("GET", "tx:b")], encoding="utf-8") == [
            "QUEUED", "QUEUED",
        ]
        await conn.execute("GET", "tx:b")
        assert await conn.execute("EXEC") == ["PONG", "v", "v", b"v"]
    finally:
        conn.close()
        await conn.wait_closed()


async def test_discard_then_exec_slots_start_afresh(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        await conn.execute("SET", "tx:d", "v")
        await conn.execute("MULTI")
        await conn.execute("GET", "tx:d", encoding="utf-8")
        await conn.execute("DISCARD")
        await conn.execute("MULTI")
        await conn.execute("GET", "tx:d")
        assert await conn.execute("EXEC") == [b"v"]
        with pytest.raises(errors.ReplyError, match="EXEC without MULTI"):
            await conn.execute("EXEC")
    finally:
        conn.close()
        await conn.wait_closed()


async def test_commands_the_server_does_not_queue_take_no_exec_slot(
    redis_standalone: Any,
) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        valkey = b"valkey_version" in await conn.execute("INFO", "server")
        await conn.execute("SET", "tx:n", "v")
        await conn.execute("MULTI")
        await conn.execute("GET", "tx:n", encoding="utf-8")
        # Redis: "MULTI calls can not be nested"; Valkey: "Command not allowed inside a
        # transaction" (the same for WATCH), and the transaction is then aborted.
        with pytest.raises(errors.ReplyError, match=r"nested|inside a transaction"):
            await conn.execute("MULTI", encoding="utf-8")
        with pytest.raises(errors.ReplyError, match=r"WATCH inside MULTI|inside a transaction"):
            await conn.execute("WATCH", "tx:n", encoding="utf-8")
        await conn.execute("GET", "tx:n")
        if valkey:
            with pytest.raises(errors.ReplyError, match="EXECABORT"):
                await conn.execute("EXEC")
            assert not conn.in_transaction
            assert await conn.execute("GET", "tx:n") == b"v"
        else:
            assert await conn.execute("EXEC") == ["v", b"v"]
    finally:
        conn.close()
        await conn.wait_closed()
