"""An aioredis 1.x application moved to clustermgr by changing only the pool factory.

``run_app`` is written against aioredis 1.x's ``Redis`` and nothing else:
counters, a hash, a work queue, pipelined commands and pub/sub. The three factories
below give it a single server (aioredis' own ``create_redis_pool``), a Redis
Cluster, or a Sentinel-managed primary; the app does not change.

Keys share the ``{app}`` hash tag, so multi-key commands stay in one slot on
a cluster as well.

Run: ``python examples/aioredis_app.py cluster 127.0.0.1:7000`` (or
``standalone HOST:PORT``, or ``sentinel HOST:PORT SERVICE``).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aioredis  # type: ignore[import-untyped,unused-ignore]

import clustermgr

clustermgr.register_with_aioredis()  # aioredis' Redis then accepts clustermgr pools


async def run_app(redis: Any) -> dict[str, Any]:
    """The application: only aioredis 1.x calls. Returns what it saw."""
    await redis.delete("{app}:hits", "{app}:user", "{app}:queue")
    for _ in range(3):
        await redis.incr("{app}:hits")
    await redis.hmset_dict("{app}:user", {"name": "ada", "lang": "en"})
    await redis.rpush("{app}:queue", "job1", "job2")
    # One after the other: commands sent at once through a pool may travel on
    # different connections, so their order is not fixed. Not redis.pipeline():
    # on a cluster it needs a connection of one node, and aioredis asks the pool
    # for one without saying which key.
    first = await redis.lpop("{app}:queue", encoding="utf-8")
    length = await redis.llen("{app}:queue")
    channel, = await redis.subscribe("{app}:news")
    try:
        await redis.publish("{app}:news", "hello")
        message = await asyncio.wait_for(channel.get(encoding="utf-8"), 5)
    finally:
        await redis.unsubscribe("{app}:news")
    return {
        "hits": int(await redis.get("{app}:hits")),
        "user": await redis.hgetall("{app}:user", encoding="utf-8"),
        "first_job": first,
        "left": length,
        "message": message,
        "both": await redis.mget("{app}:hits", "{app}:missing"),
    }


async def standalone(address: tuple[str, int]) -> Any:
    """Before: aioredis 1.x on one server."""
    return await aioredis.create_redis_pool(address)


async def cluster(startup_nodes: list[tuple[str, int]]) -> Any:
    """After: the same app on a Redis Cluster."""
    return aioredis.Redis(await clustermgr.create_cluster_pool(startup_nodes))


async def sentinel(sentinels: list[tuple[str, int]], service: str) -> Any:
    """After: the same app on a Sentinel-managed primary (follows failovers)."""
    return aioredis.Redis(await clustermgr.create_sentinel_pool(sentinels, service))


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _main(argv: list[str]) -> None:
    kind, where, *rest = argv
    if kind == "standalone":
        redis = await standalone(_address(where))
    elif kind == "cluster":
        redis = await cluster([_address(where)])
    else:
        redis = await sentinel([_address(where)], rest[0])
    try:
        print(await run_app(redis))
    finally:
        redis.close()
        await redis.wait_closed()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
