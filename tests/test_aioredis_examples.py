"""examples/aioredis_app.py: one aioredis 1.x app, three pool factories, the same results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aioredis")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import aioredis_app

EXPECTED = {
    "hits": 3,
    "user": {"name": "ada", "lang": "en"},
    "first_job": "job1",
    "left": 1,
    "message": "hello",
    "both": [b"3", None],
}


async def _run(redis: Any) -> dict[str, Any]:
    try:
        return await aioredis_app.run_app(redis)
    finally:
        redis.close()
        await redis.wait_closed()


async def test_the_app_on_aioredis_itself(redis_standalone: Any) -> None:
    assert await _run(await aioredis_app.standalone(redis_standalone.address)) == EXPECTED


async def test_the_same_app_on_a_cluster(redis_cluster: Any) -> None:
    assert await _run(await aioredis_app.cluster(redis_cluster.startup_nodes)) == EXPECTED


async def test_the_same_app_on_sentinel(redis_sentinel: Any) -> None:
    redis = await aioredis_app.sentinel(redis_sentinel.sentinel_addresses, redis_sentinel.service)
    assert await _run(redis) == EXPECTED
