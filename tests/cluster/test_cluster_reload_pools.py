"""A slot map reload that changes nothing keeps every node pool (real cluster)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clustermgr.cluster import ClusterPool, create_cluster_pool
from clustermgr.slots import SLOT_COUNT
from clustermgr.testing import LocalCluster

_RELOADS = 12


async def _forced_reloads(pool: ClusterPool, count: int) -> None:
    for _ in range(count):
        before = pool._nodes.reloads
        await pool._refresh.refresh("test", 5.0)
        assert pool._nodes.reloads > before


def _reader_ports(pool: ClusterPool) -> list[int | None]:
    readers = pool._readers
    assert readers is not None
    ports: list[int | None] = []
    for slot in range(0, SLOT_COUNT, 64):
        reader = readers[slot]
        address = reader.address if reader is not None else None
        ports.append(address[1] if isinstance(address, tuple) else None)
    return ports


async def test_reload_without_change_keeps_master_pools(redis_cluster: LocalCluster) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        pools = dict(pool.node_pools)
        await _forced_reloads(pool, _RELOADS)
        after = pool.node_pools
        assert after.keys() == pools.keys()
        assert all(after[a] is p for a, p in pools.items())
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.mark.parametrize("read_from", ["replica", "prefer_replica"])
async def test_reload_without_change_keeps_replica_pools_and_readers(
    local_cluster_factory: Callable[..., LocalCluster], read_from: str
) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=2)
    pool = await create_cluster_pool(cluster.startup_nodes, read_from=read_from)
    try:
        pools = dict(pool.node_pools)
        readers = _reader_ports(pool)
        assert len(pools) == 4  # 2 masters + the one replica read from per shard
        await _forced_reloads(pool, _RELOADS)
        after = pool.node_pools
        assert after.keys() == pools.keys()
        assert all(after[a] is p for a, p in pools.items())
        assert _reader_ports(pool) == readers
    finally:
        pool.close()
        await pool.wait_closed()
