"""Every clustermgr pool, once closed: commands fail when awaited, not at the call
(as aioredis 1.x's pool), so ``gather(..., return_exceptions=True)`` collects them."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clustermgr import create_pool, create_sentinel_pool, errors, register_with_aioredis
from clustermgr.cluster import create_cluster_pool

aioredis = pytest.importorskip("aioredis")

register_with_aioredis()


@pytest.fixture(params=["single", "cluster", "sentinel"])
async def closed_pool(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A pool of each kind, used once and closed."""
    if request.param == "single":
        pool: Any = await create_pool(request.getfixturevalue("redis_standalone").address)
    elif request.param == "cluster":
        nodes = request.getfixturevalue("redis_cluster").startup_nodes[:1]
        pool = await create_cluster_pool(nodes)
    else:
        group = request.getfixturevalue("redis_sentinel")
        pool = await create_sentinel_pool(group.sentinel_addresses, group.service)
    assert await pool.execute("PING") == b"PONG"
    pool.close()
    await pool.wait_closed()
    yield pool


async def test_gather_collects_the_errors(closed_pool: Any) -> None:
    r = aioredis.Redis(closed_pool)
    replies = await asyncio.gather(r.get("a"), r.get("b"), return_exceptions=True)
    assert [type(e) for e in replies] == [errors.PoolClosedError] * 2
    assert all(isinstance(e, aioredis.PoolClosedError) for e in replies)


async def test_execute_and_execute_pubsub_fail_when_awaited(closed_pool: Any) -> None:
    pending = [closed_pool.execute("GET", "a"), closed_pool.execute_pubsub("SUBSCRIBE", "c")]
    for awaitable in pending:
        with pytest.raises(errors.PoolClosedError):
            await awaitable


async def test_a_dropped_result_logs_nothing(
    closed_pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    closed_pool.execute("GET", "a")
    closed_pool.execute_pubsub("SUBSCRIBE", "c")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
        await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
