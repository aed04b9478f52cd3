"""ClusterPool events and stats, each driven by a real fault on a test-owned cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from clustermgr.cluster import RefreshOptions, create_cluster_pool, key_slot
from clustermgr.events import (
    Event,
    FailoverDetected,
    NodeDown,
    NodeUp,
    PubSubDisconnected,
    PubSubResubscribed,
    Redirect,
    RoleChange,
    SlotMove,
    TopologyChanged,
)
from clustermgr.testing.cluster import LocalCluster

ClusterFactory = Callable[..., LocalCluster]


async def _first(events: list[Event], match: Callable[[Event], bool], timeout: float) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for event in events:
            if match(event):
                return event
        await asyncio.sleep(0.05)
    raise AssertionError(f"no matching event in {[str(e) for e in events]}")


async def test_kill_master_emits_down_failover_topology_up(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(
        cluster.startup_nodes, refresh=RefreshOptions(period=0.3, min_interval=0.05)
    )
    seen: list[Event] = []
    pool.events.subscribe(seen.append)
    try:
        victim = cluster.masters[0]
        replica = cluster.replicas_of(victim)[0]
        await asyncio.to_thread(cluster.kill, victim)
        down = await _first(
            seen, lambda e: isinstance(e, NodeDown) and e.address == victim.address, 20
        )
        failover = await _first(seen, lambda e: isinstance(e, FailoverDetected), 30)
        assert (failover.old_master, failover.new_master) == (victim.address, replica.address)
        assert failover.detected_by.startswith("slot map") and failover.at >= down.at
        changed = await _first(
            seen, lambda e: isinstance(e, TopologyChanged) and bool(e.roles_changed), 5
        )
        assert RoleChange(replica.address, "replica", "master") in changed.roles_changed
        assert all(m.old == victim.address and m.new == replica.address for m in changed.moved)
        assert changed.moved_slots > 0 and changed.epoch > 0
        await asyncio.to_thread(cluster.restart, victim, wait_ok=True)
        await _first(seen, lambda e: isinstance(e, NodeUp) and e.address == victim.address, 30)
        stats = pool.stats()
        assert stats.refreshes > 0 and stats.node(replica.address) is not None
    finally:
        pool.close()
        await pool.wait_closed()


async def test_slot_migration_emits_redirects_and_moves_sharded_pubsub(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=0)
    pool = await create_cluster_pool(cluster.startup_nodes, refresh=RefreshOptions(period=None))
    seen: list[Event] = []
    pool.events.subscribe(seen.append)
    try:
        key, channel = "{ev}key", "{ps}chan"
        slot = key_slot(key)
        source = cluster.node_for_slot(slot)
        target = next(m for m in cluster.masters if m.port != source.port)
        await pool.execute_pubsub("SSUBSCRIBE", channel)
        await pool.execute("SET", key, "v")
        migration = await asyncio.to_thread(cluster.begin_migration, slot, target)
        await asyncio.to_thread(migration.move_keys)
        assert await pool.execute("GET", key) == b"v"  # answered after ASK
        ask = await _first(seen, lambda e: isinstance(e, Redirect), 1)
        assert (ask.redirect, ask.slot, ask.from_node, ask.to_node, ask.command) == (
            "ASK", slot, source.address, target.address, "GET"
        )
        await asyncio.to_thread(migration.finish)
        assert await pool.execute("GET", key) == b"v"  # answered after MOVED
        moved = await _first(seen, lambda e: isinstance(e, Redirect) and e.redirect == "MOVED", 5)
        assert (moved.from_node, moved.to_node) == (source.address, target.address)
        changed = await _first(seen, lambda e: isinstance(e, TopologyChanged), 5)
        assert changed.moved == (SlotMove(slot, slot, source.address, target.address),)

        # The sharded channel's slot moves: the server unsubscribes it, the pool follows.
        shard_slot = key_slot(channel)
        owner = cluster.node_for_slot(shard_slot)
        other = next(m for m in cluster.masters if m.port != owner.port)
        await asyncio.to_thread(cluster.migrate_slot, shard_slot, other)
        lost = await _first(seen, lambda e: isinstance(e, PubSubDisconnected), 10)
        back = await _first(seen, lambda e: isinstance(e, PubSubResubscribed), 10)
        assert lost.shard_channels == back.shard_channels == (channel.encode(),)
        assert lost.address == owner.address and back.address == other.address
        assert back.lost_at == lost.lost_at and back.gap_ms >= 0
        await pool.execute("SPUBLISH", channel, "hello")
        message = await pool.pubsub_shard_channels[channel.encode()].get()
        assert message == b"hello"
        stats = pool.stats()
        assert stats.redirects >= 2 and stats.resubscribes >= 1
        assert stats.node(source.address).redirects >= 2  # type: ignore[union-attr]
    finally:
        pool.close()
        await pool.wait_closed()
