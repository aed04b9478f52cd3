"""aioredis 1.3.1's Redis command class runs unchanged over clustermgr."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clustermgr import Receiver, create_connection, create_pool, register_with_aioredis

aioredis = pytest.importorskip("aioredis")

register_with_aioredis()


@pytest.fixture(params=["connection", "pool"])
async def redis(request: Any, redis_standalone: Any) -> Any:
    if request.param == "connection":
        backend: Any = await create_connection(redis_standalone.address)
    else:
        backend = await create_pool(redis_standalone.address, maxsize=3)
    client = aioredis.Redis(backend)
    yield client
    client.close()
    await client.wait_closed()


async def test_commands(redis: Any) -> None:
    assert await redis.set("compat:a", "1")
    assert await redis.get("compat:a") == b"1"
    assert await redis.get("compat:a", encoding="utf-8") == "1"
    assert await redis.incr("compat:a") == 2
    await redis.hmset_dict("compat:h", {"f": "v", "g": "w"})
    assert await redis.hgetall("compat:h", encoding="utf-8") == {"f": "v", "g": "w"}
    assert await redis.mget("compat:a", "compat:none") == [b"2", None]


async def test_transactions_and_pipelines(redis: Any) -> None:
    tr = redis.multi_exec()
    first = tr.set("compat:tx", "1")
    second = tr.incr("compat:tx")
    assert await tr.execute() == [True, 2]
    assert await first is True and await second == 2
    pipe = redis.pipeline()
    pipe.set("compat:p", "x")
    pipe.get("compat:p")
    assert await pipe.execute() == [True, b"x"]


async def test_pubsub(redis: Any, redis_standalone: Any) -> None:
    channel, = await redis.subscribe("compat:chan")
    publisher = await create_connection(redis_standalone.address)
    try:
        await publisher.execute("PUBLISH", "compat:chan", "msg")
        assert await asyncio.wait_for(channel.get(), 2) == b"msg"
        await redis.unsubscribe("compat:chan")
    finally:
        publisher.close()
        await publisher.wait_closed()


async def test_auth_through_aioredis_on_a_pool(local_standalone_factory: Any) -> None:
    server = local_standalone_factory(password="first")
    pool = await create_pool(server.address, password="first", minsize=2, maxsize=2)
    client = aioredis.Redis(pool)
    try:
        await client.config_set("requirepass", "second")
        assert await client.auth("second") is True
        await client.execute("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")
        await asyncio.sleep(0.1)
        assert await client.ping() == b"PONG"  # new connections log in with "second"
    finally:
        client.close()
        await client.wait_closed()


async def test_blpop_cancelled_by_wait_for_does_not_hang_a_one_connection_pool(
    redis_standalone: Any,
) -> None:
    pool = await create_pool(redis_standalone.address, minsize=1, maxsize=1)
    client = aioredis.Redis(pool)
    try:
        await client.delete("compat:q")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.blpop("compat:q", timeout=0), 0.2)
        assert await asyncio.wait_for(client.ping(), 2) == b"PONG"
        await client.rpush("compat:q", "x")
        await asyncio.sleep(0.1)
        assert await client.llen("compat:q") == 1
    finally:
        client.close()
        await client.wait_closed()


async def test_with_pool_without_await_raises(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, maxsize=1)
    try:
        with pytest.raises(RuntimeError, match="with await pool"), pool:
            pass
        with await pool as conn:  # the idiom still works, and releases
            assert await conn.execute("PING") == b"PONG"
        assert pool.freesize == 1
    finally:
        pool.close()
        await pool.wait_closed()


async def test_connection_address_is_the_peer_as_in_aioredis(redis_standalone: Any) -> None:
    _, port = redis_standalone.address
    conn = await create_connection(("localhost", port))
    try:
        assert conn.address in (("127.0.0.1", port), ("::1", port))  # the peer, not "localhost"
        assert conn.server_address.host == "localhost"  # the configured address stays
    finally:
        conn.close()
        await conn.wait_closed()
    assert conn.address[1] == port  # still known once closed


async def test_aioredis_isinstance_checks_see_clustermgr_pools(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address)
    try:
        assert isinstance(pool, aioredis.ConnectionsPool)
        async with pool.get() as conn:
            assert isinstance(conn, aioredis.RedisConnection)
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.mark.parametrize("receiver_cls", ["aioredis", "clustermgr"])
async def test_receiver_iteration_ends_when_its_last_channel_closes(
    redis: Any, redis_standalone: Any, receiver_cls: str,
) -> None:
    """As on aioredis: unsubscribing every sender of a Receiver stops it, ending ``iter()``.

    Both aioredis' own Receiver and clustermgr's, over clustermgr's connection and pool.
    """
    receiver = aioredis.pubsub.Receiver() if receiver_cls == "aioredis" else Receiver()
    await redis.subscribe(receiver.channel("compat:rx:a"), receiver.channel("compat:rx:b"))
    await redis.psubscribe(receiver.pattern("compat:rx:p*"))
    got: list[Any] = []

    async def read() -> None:
        async for _channel, message in receiver.iter():
            got.append(message)

    reader = asyncio.ensure_future(read())
    publisher = await create_connection(redis_standalone.address)
    try:
        assert await publisher.execute("PUBLISH", "compat:rx:a", "1") == 1
        assert await publisher.execute("PUBLISH", "compat:rx:p1", "2") == 1
        for _ in range(100):
            if len(got) == 2:
                break
            await asyncio.sleep(0.02)
        await redis.unsubscribe("compat:rx:a", "compat:rx:b")
        assert receiver.is_active  # the pattern is still subscribed
        await redis.punsubscribe("compat:rx:p*")
        await asyncio.wait_for(reader, 5)
        assert got == [b"1", (b"compat:rx:p1", b"2")]
        assert not receiver.is_active
        assert dict(receiver.channels) == {} and dict(receiver.patterns) == {}
    finally:
        publisher.close()
        await publisher.wait_closed()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
