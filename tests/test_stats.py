"""pool.stats(): counters per node and pool, and the opt-in latency histogram."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clustermgr import create_cluster_pool, create_pool, errors
from clustermgr.stats import HistogramSnapshot


async def test_standalone_counts_commands_and_errors(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, maxsize=2)
    try:
        before = pool.stats()
        assert before.kind == "standalone" and before.latency is None
        await asyncio.gather(*(pool.execute("SET", f"st:{i}", i) for i in range(100)))
        await pool.execute("LPUSH", "st:list", "x")
        with pytest.raises(errors.ReplyError):
            await pool.execute("INCR", "st:list")
        stats = pool.stats()
        node = stats.nodes[0]
        assert node.address == "{}:{}".format(*redis_standalone.address)
        assert stats.commands - before.commands == 102
        assert stats.errors == {"WrongTypeError": 1}
        assert node.connections_open >= 1 and node.connects >= 1 and node.waiting == 0
        assert stats.to_dict()["commands"] == stats.commands
    finally:
        pool.close()
        await pool.wait_closed()


async def test_latency_histogram_is_opt_in(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address)
    try:
        await pool.execute("PING")
        assert pool.stats().latency is None
        histogram = pool.enable_latency_histogram()
        assert pool.enable_latency_histogram() is histogram
        await asyncio.gather(*(pool.execute("PING") for _ in range(50)))
        latency = pool.stats().latency
        assert isinstance(latency, HistogramSnapshot) and latency.count == 50
        assert latency.sum > 0 and latency.quantile(0.5) is not None
    finally:
        pool.close()
        await pool.wait_closed()


async def test_cluster_stats_per_node(redis_cluster: Any) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        pool.enable_latency_histogram()
        keys = [f"cs:{i}" for i in range(60)]
        await asyncio.gather(*(pool.execute("SET", k, 1) for k in keys))
        stats = pool.stats()
        assert stats.kind == "cluster" and stats.refreshes >= 1
        masters = [n for n in stats.nodes if n.role == "master"]
        assert len(masters) == 3 and all(n.commands > 0 for n in masters)
        assert stats.latency is not None and stats.latency.count == 60
    finally:
        pool.close()
        await pool.wait_closed()
