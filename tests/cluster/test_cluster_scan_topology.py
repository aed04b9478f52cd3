"""ClusterPool.iscan() while the cluster grows or a slot leaves and comes back.

Each test owns its cluster; an extra master that owns no slot joins it the way
a cluster is grown (CLUSTER MEET, then slots are migrated onto it).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterator

import pytest

from clustermgr._timeout import timeout
from clustermgr.cluster import ClusterPool, create_cluster_pool, key_slot
from clustermgr.testing import LocalServer
from clustermgr.testing.cluster import LocalCluster, SlotMigration


def _wait(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting until {what}")


def _add_empty_master(cluster: LocalCluster) -> LocalServer:
    """Start a node, MEET it into ``cluster`` and wait until every node knows it."""
    extra = LocalServer(cluster=True, config=["cluster-node-timeout 1500"], name="extra")
    extra.start()
    try:
        first = cluster.masters[0]
        extra.command("CLUSTER", "MEET", first.host, first.port, first.bus_port)
        everyone = [*cluster.nodes, extra]

        def joined(node: LocalServer) -> bool:
            nodes = str(node.command("CLUSTER", "NODES"))
            return (
                len(nodes.strip().splitlines()) == len(everyone)
                and "handshake" not in nodes
                and "cluster_state:ok" in str(node.command("CLUSTER", "INFO"))
            )

        _wait("the new node joined", lambda: all(joined(n) for n in everyone))
    except BaseException:
        extra.stop()
        raise
    return extra


@pytest.fixture
def grown(
    local_cluster_factory: Callable[..., LocalCluster],
) -> Iterator[tuple[LocalCluster, LocalServer]]:
    """A 2-master cluster (no replicas, partial coverage allowed) plus a slotless master."""
    cluster = local_cluster_factory(
        masters=2, replicas_per_master=0, config=["cluster-require-full-coverage no"]
    )
    extra = _add_empty_master(cluster)
    try:
        yield cluster, extra
    finally:
        extra.stop()


def _check(keys: list[bytes], found: list[bytes]) -> tuple[int, int]:
    doubles = sum(1 for n in collections.Counter(found).values() if n > 1)
    return len(set(keys) - set(found)), doubles


async def _scan(pool: ClusterPool, count: int) -> list[bytes]:
    async with timeout(60):
        return [key async for key in pool.iscan(count=count)]


async def test_scan_while_a_slot_migrates_onto_a_master_with_no_slots(
    grown: tuple[LocalCluster, LocalServer],
) -> None:
    cluster, extra = grown
    pool = await create_cluster_pool(cluster.startup_nodes, maxsize=4)
    try:
        keys = [f"{{grow}}:{i}".encode() for i in range(200)]
        keys += [f"other:{i}".encode() for i in range(200)]
        await pool.execute(b"MSET", *(x for k in keys for x in (k, b"1")))
        slot = key_slot(b"{grow}")

        def begin() -> None:
            migration = SlotMigration(cluster, slot, cluster.node_for_slot(slot), extra)
            migration.begin()
            migration.move_batch(100)  # half of the slot's keys are on the new node

        await asyncio.to_thread(begin)
        found = await _scan(pool, 100)
        assert _check(keys, found) == (0, 0)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_scan_sees_a_slot_the_map_shows_unassigned_but_a_new_master_owns(
    grown: tuple[LocalCluster, LocalServer],
) -> None:
    cluster, extra = grown
    slot = key_slot(b"{lost}")
    everyone = [*cluster.nodes, extra]
    await asyncio.to_thread(lambda: [n.command("CLUSTER", "DELSLOTS", slot) for n in everyone])
    pool = await create_cluster_pool(cluster.startup_nodes, maxsize=4)
    try:
        assert pool.slot_map is not None and pool.slot_map.shards[slot] is None
        others = [f"o:{i}".encode() for i in range(300)]
        await pool.execute(b"MSET", *(x for k in others for x in (k, b"1")))

        def reassign() -> None:
            extra.command("CLUSTER", "ADDSLOTS", slot)
            _wait("every node sees the new owner", lambda: all(
                "cluster_state:ok" in str(n.command("CLUSTER", "INFO"))
                and str(n.command("CLUSTER", "NODES")).count(f" {slot}") >= 1
                for n in everyone
            ))

        await asyncio.to_thread(reassign)
        lost = [f"{{lost}}:{i}".encode() for i in range(100)]
        with extra.connect() as conn:  # another client writes to the slot's new owner
            conn.command("MSET", *(x for k in lost for x in (k, b"1")))
        found = await _scan(pool, 50)
        assert _check(lost + others, found) == (0, 0)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_slot_leaves_and_returns_during_its_owners_scan(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=0)
    pool = await create_cluster_pool(cluster.startup_nodes, maxsize=4)
    try:
        moving = [f"{{away}}:{i}".encode() for i in range(2000)]
        slot = key_slot(moving[0])
        owner = cluster.node_for_slot(slot)
        other = next(m for m in cluster.masters if m.port != owner.port)
        keys = moving + [f"o:{i}".encode() for i in range(4000)]
        for start in range(0, len(keys), 500):
            await pool.execute_batch([("SET", k, b"1") for k in keys[start:start + 500]])
        owned_by_owner = {s for s in range(16384) if pool.slot_owner(s) == owner.address}
        found: list[bytes] = []
        phase = since = 0
        async with timeout(120):
            async for key in pool.iscan(count=10):
                found.append(key)
                if phase == 0 and key_slot(key) in owned_by_owner:
                    phase = 1  # the owner's scan has begun: the slot leaves ...
                    await asyncio.to_thread(cluster.migrate_slot, slot, other)
                elif phase == 1:
                    since += 1
                    if since == 600:  # ... and comes back while that scan runs
                        phase = 2
                        await asyncio.to_thread(cluster.migrate_slot, slot, owner)
        assert phase == 2
        assert _check(keys, found) == (0, 0)
    finally:
        pool.close()
        await pool.wait_closed()
