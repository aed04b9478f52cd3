"""``SentinelPool.select``: aioredis' ``Redis(pool).select(db)`` on a sentinel pool."""

from __future__ import annotations

import pytest

from clustermgr import create_connection, create_sentinel_pool, errors
from clustermgr.testing import LocalSentinelGroup

pytestmark = pytest.mark.timeout(60)


async def test_select_switches_the_pool_and_a_refused_db_leaves_it(
    redis_sentinel: LocalSentinelGroup,
) -> None:
    pool = await create_sentinel_pool(redis_sentinel.sentinel_addresses, redis_sentinel.service)
    raw = await create_connection(redis_sentinel.master_address, db=5)
    try:
        assert await pool.select(5) is True
        assert pool.db == 5
        await pool.execute("SET", "sentinel:select", "in-5")
        assert await raw.execute("GET", "sentinel:select") == b"in-5"
        async with pool.get() as conn:
            assert conn.db == 5
        with pytest.raises(errors.ReplyError):
            await pool.select(100000)  # out of range: the server refuses
        assert pool.db == 5
        assert await pool.execute("GET", "sentinel:select") == b"in-5"
    finally:
        await raw.execute("DEL", "sentinel:select")
        raw.close()
        pool.close()
        await raw.wait_closed()
        await pool.wait_closed()
