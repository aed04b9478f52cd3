"""The custom-manager example (examples/readwrite_pool.py) runs like any pool."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from clustermgr import AbcPool, create_connection, register_with_aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from readwrite_pool import ReadWritePool, create_readwrite_pool


@pytest.fixture
async def rw_pool(local_standalone_factory: Any) -> Any:
    primary = local_standalone_factory()
    host, port = primary.address
    replica = local_standalone_factory(config=[("replicaof", f"{host} {port}")])
    pool = await create_readwrite_pool(primary.address, replica.address, maxsize=2)
    async with pool.get() as conn:  # wait until the replica is in sync
        await conn.execute("WAIT", 1, 5000)
    yield pool, replica
    pool.close()
    await pool.wait_closed()


async def _count(address: Any, command: str) -> int:
    conn = await create_connection(address)
    try:
        info = await conn.execute("INFO", "commandstats", encoding="utf-8")
    finally:
        conn.close()
        await conn.wait_closed()
    for line in info.splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


async def test_reads_go_to_the_replica(rw_pool: Any) -> None:
    pool, replica = rw_pool
    assert isinstance(pool, AbcPool) and pool.address is None
    await pool.execute("SET", "rw:key", "v")
    async with pool.get() as conn:
        await conn.execute("WAIT", 1, 5000)
    before = await _count(replica.address, "get")
    assert await pool.execute("GET", "rw:key") == b"v"
    assert await _count(replica.address, "get") == before + 1


async def test_aioredis_over_custom_pool(rw_pool: Any) -> None:
    aioredis = pytest.importorskip("aioredis")
    register_with_aioredis()
    pool, _ = rw_pool
    redis = aioredis.Redis(pool)
    assert await redis.set("rw:a", 1)
    tr = redis.multi_exec()
    tr.incr("rw:a")
    tr.incr("rw:a")
    assert await tr.execute() == [2, 3]
    channel, = await redis.subscribe("rw:chan")
    await redis.publish("rw:chan", "hi")
    assert await asyncio.wait_for(channel.get(), 2) == b"hi"


def test_example_is_short() -> None:
    source = Path(sys.modules[ReadWritePool.__module__].__file__ or "").read_text()
    assert len(source.splitlines()) < 100
