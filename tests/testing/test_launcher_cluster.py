"""LocalCluster: startup, roles, failover, resharding, faults, cleanup."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from launcher_helpers import assert_all_gone

from clustermgr.testing import SLOT_COUNT, LocalCluster, RespError, TopologyTimeout, wait_until
from clustermgr.testing.resp import as_list, as_str


def test_shared_cluster_is_healthy(redis_cluster: LocalCluster) -> None:
    cluster = redis_cluster
    assert len(cluster.nodes) == 6
    masters, replicas = cluster.masters, cluster.replicas
    assert len(masters) == 3 and len(replicas) == 3
    slots = cluster.slots()
    assert sum(r.end - r.start + 1 for r in slots) == SLOT_COUNT
    assert {r.master_port for r in slots} == {m.port for m in masters}
    for master in masters:
        assert len(cluster.replicas_of(master)) == 1
    assert sorted(cluster.startup_nodes) == sorted(n.address for n in cluster.nodes)
    assert cluster.node_for_slot(0) in masters
    assert cluster.node_for_slot(SLOT_COUNT - 1) in masters
    node = cluster.node_for_key("somekey")
    assert node.command("SET", "somekey", "v") == "OK"
    other = next(m for m in masters if m is not node)
    with pytest.raises(RespError) as err:
        other.command("GET", "somekey")
    assert err.value.kind == "MOVED"
    assert cluster.problem() is None
    assert cluster.is_ok()
    assert "masters=3" in repr(cluster)


def test_failover_swaps_roles(local_cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=1)
    master = cluster.node_for_slot(0)
    replica = cluster.replicas_of(master)[0]
    cluster.failover(replica)
    assert replica.role() == "master"
    assert master.role() == "slave"
    assert cluster.node_for_slot(0) is replica
    assert cluster.replicas_of(replica) == [master]
    cluster.failover(master, mode="force")
    assert cluster.node_for_slot(0) is master
    with pytest.raises(ValueError):
        cluster.failover(master)  # a master cannot fail over
    with pytest.raises(ValueError):
        cluster.failover(replica, mode="bogus")


def test_migrate_slot_moves_keys(local_cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=1)
    slot = cluster.keyslot("{user1}")
    source = cluster.node_for_slot(slot)
    target = next(m for m in cluster.masters if m is not source)
    for i in range(250):
        source.command("SET", f"{{user1}}:{i}", i)
    moved = cluster.migrate_slot(slot, target, batch=64)
    assert moved == 250
    assert cluster.node_for_slot(slot) is target
    assert all(cluster.node_for_slot(slot) is target for _ in range(3))
    assert target.command("GET", "{user1}:249") == "249"
    assert source.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    for node in cluster.nodes:  # every node agrees on the new owner
        assert cluster.slots(via=node) == cluster.slots()
    assert cluster.migrate_slot(slot, target) == 0  # already there


def test_step_by_step_migration_allows_traffic(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=0)
    slot = cluster.keyslot("{mid}")
    source = cluster.node_for_slot(slot)
    target = next(m for m in cluster.masters if m is not source)
    for i in range(10):
        source.command("SET", f"{{mid}}:{i}", i)
    migration = cluster.begin_migration(slot, target)
    assert migration.keys_left() == 10
    assert migration.move_batch(4) == 4
    # a moved key answers ASK on the source; an unmoved one is still served there
    left = {as_str(k) for k in as_list(source.command("CLUSTER", "GETKEYSINSLOT", slot, 100))}
    assert len(left) == 6
    moved_key = next(f"{{mid}}:{i}" for i in range(10) if f"{{mid}}:{i}" not in left)
    with pytest.raises(RespError) as err:
        source.command("GET", moved_key)
    assert err.value.kind == "ASK"
    with target.connect() as conn:
        conn.command("ASKING")
        assert conn.command("GET", moved_key) is not None
    assert migration.move_keys(batch=3) == 6
    migration.finish()
    assert cluster.node_for_slot(slot) is target
    assert "moved=10" in repr(migration)


def test_kill_master_promotes_replica_and_restart_rejoins(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=1, node_timeout_ms=1000)
    master = cluster.node_for_slot(100)
    replica = cluster.replicas_of(master)[0]
    cluster.kill(master)
    assert not master.is_running
    cluster.wait_ok(timeout=20)
    assert replica.role() == "master"
    assert cluster.node_for_slot(100) is replica
    cluster.restart(master, wait_ok=True)
    assert master.role() == "slave"
    assert cluster.replicas_of(replica) == [master]


def test_stop_leaves_no_process_and_partial_start_cleans_up(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=1, replicas_per_master=1)
    pids = cluster.pids
    directory = cluster.directory
    assert len(pids) == 2 and directory is not None
    info = as_str(cluster.nodes[0].command("CLUSTER", "INFO"))
    assert "cluster_slots_assigned:16384" in info
    cluster.stop()
    cluster.stop()
    assert_all_gone(pids)
    assert not directory.exists()
    assert cluster.pids == []

    broken = LocalCluster(masters=1, replicas_per_master=0, startup_timeout=1.0)
    broken.node_timeout_ms = -5  # invalid config value -> node refuses to start
    with pytest.raises(Exception) as exc:
        broken.start()
    assert "cluster-node-timeout" in str(exc.value) or isinstance(exc.value, TopologyTimeout)
    assert broken.pids == [] and broken.directory is None


def test_pause_is_detected(local_cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=0, node_timeout_ms=1000)
    victim = cluster.masters[0]
    cluster.pause(victim)
    try:
        assert victim not in cluster.available_nodes
        # a master without replica is down -> the others report cluster_state:fail
        wait_until(lambda: not cluster.is_ok(), timeout=10, what="failure detection")
        with pytest.raises(TopologyTimeout):
            cluster.wait_ok(timeout=0.5)
    finally:
        cluster.resume(victim)
    cluster.wait_ok(timeout=20)
    assert victim.role() == "master"
