"""Cost that grows with the work: runner-side jobs for the ``--concurrency-sweep``.

* ``sweep-concurrency`` (any client): throughput, latency, sockets and RSS
  at each concurrency level, from 1 to 1,000 tasks, in one process.
* ``mem-connections`` (clustermgr): memory of N idle connections, by
  ``tracemalloc`` (Python allocations) and RSS delta, for several N.
* ``mem-channels`` (clustermgr): memory of N subscribed channels, likewise.

"Flat" means the marginal bytes per connection / per channel stay the same as
N grows.  The harness side (which clusters, which clients) is in
:mod:`benchmarks.harness`.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from .adapters import make_adapter
from .jobs import Job, Target, keys
from .procstats import RssSampler, open_sockets, rss_bytes
from .scenarios import mixed_load, populate, summarise

__all__ = ["SWEEP_JOBS"]

CHANNEL_CHUNK = 1000


async def concurrency_sweep(job: Job) -> dict[str, Any]:
    """GET/SET mix at each of ``params["levels"]`` task counts, ``params["ops"]`` ops each."""
    levels: list[int] = list(job.params["levels"])
    ops = int(job.params["ops"])
    key_list = keys(int(job.params.get("keyspace", 10_000)))
    adapter = make_adapter(job.client, job.maxsize, job.client_options)
    rss_start = rss_bytes()
    await adapter.connect(job.target)
    rows: list[dict[str, Any]] = []
    try:
        await populate(adapter, key_list)
        for level in levels:
            await mixed_load(adapter, key_list, level, max(2 * level, ops // 10), None)
            sampler = RssSampler()
            sampler.start()
            deadline = None if job.duration is None else _deadline_ns(job.duration)
            sample = await mixed_load(adapter, key_list, level, max(ops, level), deadline)
            peak = await sampler.stop()
            row = summarise(sample, "op")
            row["tasks"] = level
            row["rss_peak_mb"] = round(peak / 2**20, 1)
            rows.append(row)
    finally:
        await adapter.close()
    return {
        "levels": rows,
        "rss_start_mb": round(rss_start / 2**20, 1),
        "client_info": adapter.describe(),
    }


def _deadline_ns(duration: float) -> int:
    return time.perf_counter_ns() + int(duration * 1e9)


async def _measure(
    open_: Callable[[], Awaitable[Any]], close: Callable[[Any], Awaitable[None]]
) -> dict[str, Any]:
    """Python bytes (tracemalloc), RSS bytes and sockets added by ``open_()``."""
    gc.collect()
    tracemalloc.start()
    traced0 = tracemalloc.get_traced_memory()[0]
    rss0, sockets0 = rss_bytes(), open_sockets()
    handle = await open_()
    await asyncio.sleep(0.2)  # background connects/replies settle
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - traced0
    rss, sockets = rss_bytes() - rss0, open_sockets() - sockets0
    tracemalloc.stop()
    await close(handle)
    return {"traced_bytes": traced, "rss_bytes": rss, "sockets": sockets}


def _flatness(rows: list[dict[str, Any]], unit: str, count_key: str) -> None:
    """Add bytes per unit (average, and marginal over the previous row) to ``rows``."""
    previous: dict[str, Any] | None = None
    for row in rows:
        n = row[count_key]
        row[f"traced_per_{unit}"] = round(row["traced_bytes"] / n) if n else None
        row[f"rss_per_{unit}"] = round(row["rss_bytes"] / n) if n else None
        if previous is not None and n > previous[count_key]:
            dn = n - previous[count_key]
            row[f"marginal_traced_per_{unit}"] = round(
                (row["traced_bytes"] - previous["traced_bytes"]) / dn
            )
        previous = row


async def _open_pool(target: Target, size: int) -> Any:
    import clustermgr
    from clustermgr.cluster import create_cluster_pool

    if target.kind == "cluster":
        return await create_cluster_pool(list(target.nodes), minsize=size, maxsize=size)
    return await clustermgr.create_pool(target.address, minsize=size, maxsize=size)


async def _close_pool(pool: Any) -> None:
    pool.close()
    await pool.wait_closed()


async def idle_connections(job: Job) -> dict[str, Any]:
    """clustermgr: memory of pools holding N idle connections per node."""
    counts: list[int] = list(job.params["counts"])
    await _close_pool(await _open_pool(job.target, 1))  # warm imports and caches
    rows = []
    for size in counts:

        async def open_(size: int = size) -> Any:
            return await _open_pool(job.target, size)

        row = await _measure(open_, _close_pool)
        row["per_node"] = size
        rows.append(row)
    _flatness(rows, "connection", "sockets")
    return {"rows": rows, "target": job.target.kind}


async def subscribed_channels(job: Job) -> dict[str, Any]:
    """clustermgr: memory of N channels subscribed on one pool."""
    counts: list[int] = list(job.params["counts"])
    pool = await _open_pool(job.target, 1)
    rows = []
    try:
        await _subscribe(pool, 10, "warm")
        await _unsubscribe(pool, 10, "warm")
        for count in counts:

            async def open_(count: int = count) -> int:
                await _subscribe(pool, count, "ch")
                return count

            async def close(count: int) -> None:
                await _unsubscribe(pool, count, "ch")

            row = await _measure(open_, close)
            row["channels"] = count
            row["subscribed"] = len(pool.pubsub_channels)
            rows.append(row)
    finally:
        await _close_pool(pool)
    _flatness(rows, "channel", "channels")
    return {"rows": rows, "target": job.target.kind}


def _channel_names(count: int, prefix: str) -> list[bytes]:
    return [b"bench:%s:%07d" % (prefix.encode(), i) for i in range(count)]


async def _subscribe(pool: Any, count: int, prefix: str) -> None:
    names = _channel_names(count, prefix)
    for start in range(0, count, CHANNEL_CHUNK):
        await pool.execute_pubsub(b"SUBSCRIBE", *names[start : start + CHANNEL_CHUNK])


async def _unsubscribe(pool: Any, count: int, prefix: str) -> None:
    names = _channel_names(count, prefix)
    for start in range(0, count, CHANNEL_CHUNK):
        await pool.execute_pubsub(b"UNSUBSCRIBE", *names[start : start + CHANNEL_CHUNK])


SWEEP_JOBS: dict[str, Callable[[Job], Awaitable[dict[str, Any]]]] = {
    "sweep-concurrency": concurrency_sweep,
    "mem-connections": idle_connections,
    "mem-channels": subscribed_channels,
}
