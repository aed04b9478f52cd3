"""SentinelPool has the attributes of aioredis 1.x's ConnectionsPool (it passes
``isinstance(pool, aioredis.ConnectionsPool)`` after registering)."""

from __future__ import annotations

from clustermgr import create_sentinel_pool
from clustermgr.testing import LocalSentinelGroup


async def test_minsize_and_maxsize_are_the_server_pools_sizes(
    redis_sentinel: LocalSentinelGroup,
) -> None:
    pool = await create_sentinel_pool(
        redis_sentinel.sentinel_addresses, redis_sentinel.service, minsize=2, maxsize=5
    )
    try:
        assert (pool.minsize, pool.maxsize) == (2, 5)
        assert await pool.execute("PING") == b"PONG"
        assert pool.size >= 2 and pool.size <= 5
    finally:
        pool.close()
        await pool.wait_closed()
