"""aioredis' SCAN loops (``redis.scan(cursor)`` until 0, ``redis.iscan()``) over a cluster pool.

Each SCAN of a cluster pool runs on one master; its cursor says which one
and where, so a caller's loop visits every master in turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from clustermgr import register_with_aioredis
from clustermgr.cluster import ClusterPool, create_cluster_pool
from clustermgr.testing.cluster import LocalCluster

aioredis = pytest.importorskip("aioredis")
register_with_aioredis()

_KEYS = {f"ascan:{i}".encode() for i in range(300)}


@pytest.fixture
async def redis(redis_cluster: LocalCluster) -> AsyncIterator[Any]:
    pool: ClusterPool = await create_cluster_pool(redis_cluster.startup_nodes[:1])
    client = aioredis.Redis(pool)
    await pool.execute_batch([(b"SET", key, b"v") for key in _KEYS])
    yield client
    await client.delete(*_KEYS)
    client.close()
    await client.wait_closed()


async def test_a_scan_cursor_loop_visits_every_master(redis: Any) -> None:
    seen: list[bytes] = []
    cursor, calls = 0, 0
    while True:
        cursor, keys = await redis.scan(cursor, match="ascan:*", count=50)
        seen.extend(keys)
        calls += 1
        assert calls < 1000
        if cursor == 0:
            break
    assert set(seen) == _KEYS


async def test_aioredis_iscan_yields_every_key(redis: Any) -> None:
    assert {key async for key in redis.iscan(match="ascan:*")} == _KEYS


async def test_a_scan_cursor_decodes_with_the_reply(redis: Any) -> None:
    reply = await redis.connection.execute(b"SCAN", 0, b"MATCH", b"ascan:*", encoding="utf-8")
    assert isinstance(reply[0], str) and int(reply[0]) >= 0
    assert all(isinstance(key, str) for key in reply[1])
