"""Discovery, sentinel learning and the sentinel client, on the shared group."""

from __future__ import annotations

import asyncio

import pytest

from clustermgr import SentinelPool, create_sentinel, create_sentinel_pool
from clustermgr.testing import LocalSentinelGroup

pytestmark = pytest.mark.timeout(60)


async def test_pool_serves_the_master(redis_sentinel: LocalSentinelGroup) -> None:
    pool = await create_sentinel_pool(redis_sentinel.sentinel_addresses, redis_sentinel.service)
    try:
        assert isinstance(pool, SentinelPool)
        assert pool.address == redis_sentinel.master_address
        assert await pool.execute("SET", "sentinel:smoke", "1") == b"OK"
        assert await pool.execute("GET", "sentinel:smoke") == b"1"
        role = await pool.execute("ROLE")
        assert role[0] == b"master"
        async with pool.get() as conn:
            assert await conn.execute("PING") == b"PONG"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_replica_role(redis_sentinel: LocalSentinelGroup) -> None:
    pool = await create_sentinel_pool(
        redis_sentinel.sentinel_addresses, redis_sentinel.service, role="replica",
        encoding="utf-8",
    )
    try:
        assert pool.address in [r.address for r in redis_sentinel.replicas]
        role = await pool.execute("ROLE")
        assert role[0] == "slave"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_learns_peer_sentinels(redis_sentinel: LocalSentinelGroup) -> None:
    first = redis_sentinel.sentinel_addresses[0]
    pool = await create_sentinel_pool([first], redis_sentinel.service)
    try:
        assert sorted(pool.sentinel.addresses) == sorted(redis_sentinel.sentinel_addresses)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_sentinel_client(redis_sentinel: LocalSentinelGroup) -> None:
    client = await create_sentinel(redis_sentinel.sentinel_addresses)
    try:
        master = await client.master(redis_sentinel.service)
        assert (master["ip"], int(master["port"])) == redis_sentinel.master_address
        assert await client.master_address(redis_sentinel.service) == (
            redis_sentinel.master_address
        )
        assert [m["name"] for m in await client.masters()] == [redis_sentinel.service]
        replicas = await client.replicas(redis_sentinel.service)
        assert len(replicas) == 1
        peers = await client.sentinels(redis_sentinel.service)
        assert len(peers) == 2
        assert (await client.ckquorum(redis_sentinel.service)).startswith("OK")
    finally:
        client.close()
        await client.wait_closed()


async def test_many_commands_pipelined(redis_sentinel: LocalSentinelGroup) -> None:
    pool = await create_sentinel_pool(redis_sentinel.sentinel_addresses, redis_sentinel.service)
    try:
        replies = await asyncio.gather(
            *(pool.execute("SET", f"sentinel:many:{i}", i) for i in range(500))
        )
        assert replies == [b"OK"] * 500
    finally:
        pool.close()
        await pool.wait_closed()
