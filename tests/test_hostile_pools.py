"""Every pool factory passes ``max_reply_size`` on to the connections it opens."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from clustermgr import create_pool, create_sentinel_pool
from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import RedisError
from clustermgr.replybound import ReplyTooLargeError
from clustermgr.testing import LocalSentinelGroup, LocalStandalone
from clustermgr.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(60)

_BOUND = 1000


def _refused_in(error: BaseException) -> ReplyTooLargeError | None:
    """The ReplyTooLargeError behind ``error`` (causes, contexts and a retry's last error)."""
    seen: BaseException | None = error
    for _ in range(20):
        if seen is None or isinstance(seen, ReplyTooLargeError):
            return seen
        seen = getattr(seen, "last_error", None) or seen.__cause__ or seen.__context__
    return None


async def _check(pool: Any) -> None:
    key = f"hostile:{uuid.uuid4().hex}"
    try:
        assert await pool.execute("SET", key, b"v" * 5000) == b"OK"
        assert await pool.execute("STRLEN", key) == 5000
        with pytest.raises(RedisError) as info:
            await pool.execute("GET", key)
        refused = _refused_in(info.value)
        assert refused is not None, repr(info.value)
        assert refused.bound == _BOUND
    finally:
        pool.close()
        await pool.wait_closed()


async def test_standalone_pool(redis_standalone: LocalStandalone) -> None:
    await _check(await create_pool(redis_standalone.address, max_reply_size=_BOUND))


async def test_cluster_pool(redis_cluster: LocalCluster) -> None:
    await _check(await create_cluster_pool(
        redis_cluster.startup_nodes, max_reply_size=_BOUND, retry_timeout=2.0,
    ))


async def test_sentinel_pool(redis_sentinel: LocalSentinelGroup) -> None:
    await _check(await create_sentinel_pool(
        redis_sentinel.sentinel_addresses, redis_sentinel.service, max_reply_size=_BOUND,
    ))
