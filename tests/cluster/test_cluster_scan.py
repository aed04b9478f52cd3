"""ClusterPool.iscan() while slots move between masters (a test-owned 3+3 cluster)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from clustermgr.cluster import ClusterPool, create_cluster_pool, key_slot
from clustermgr.cluster.scan import NodeSlots, _Pass, _Scanned, cluster_scan, parse_own_slots
from clustermgr.cluster.topology import NodeInfo, Shard, SlotMap
from clustermgr.errors import PoolClosedError
from clustermgr.testing.cluster import LocalCluster

_TAGS = 90
_PER_TAG = 40


def _keys() -> list[bytes]:
    """Keys in few slots (hash tags) so moving a slot moves many keys."""
    return [f"{{mv{t}}}:{i}".encode() for t in range(_TAGS) for i in range(_PER_TAG)]


def _slots_by_owner(pool: ClusterPool, keys: list[bytes]) -> dict[int, list[int]]:
    owners: dict[int, set[int]] = collections.defaultdict(set)
    for key in keys:
        slot = key_slot(key)
        owner = pool.slot_owner(slot)
        assert owner is not None
        owners[owner[1]].add(slot)
    return {port: sorted(slots) for port, slots in owners.items()}


async def _migrate(cluster: LocalCluster, moves: list[tuple[int, int]]) -> None:
    """Move each ``(slot, target port)`` with its keys (blocking helpers, in a thread)."""

    def run() -> None:
        for slot, port in moves:
            cluster.migrate_slot(slot, cluster.node_by_port(port))

    await asyncio.to_thread(run)


async def test_scan_yields_each_key_once_while_slots_move(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=1)
    pool = await create_cluster_pool(cluster.startup_nodes[:1], maxsize=4)
    try:
        keys = _keys()
        await pool.execute(b"MSET", *(x for k in keys for x in (k, b"1")))
        by_owner = _slots_by_owner(pool, keys)
        assert len(by_owner) == 3 and all(len(s) >= 12 for s in by_owner.values())
        owner0 = {slot: port for port, slots in by_owner.items() for slot in slots}
        # A migration in progress for the whole scan: half of one slot's keys moved.
        ports = sorted(by_owner)
        steady_slot = by_owner[ports[2]].pop()
        migration = await asyncio.to_thread(
            cluster.begin_migration, steady_slot, cluster.node_by_port(ports[0])
        )
        await asyncio.to_thread(migration.move_batch, _PER_TAG // 2)

        found: list[bytes] = []
        moved: set[int] = {steady_slot}
        first = second = None
        async for key in pool.iscan(count=10):
            found.append(key)
            slot = key_slot(key)
            if first is None:
                first = owner0[slot]
                others = [p for p in ports if p != first]
                # While the first master is scanned: slots leave it and arrive on it.
                moves = [(s, first) for p in others for s in by_owner[p][:3]]
                moves += [(s, p) for p in others for s in by_owner[first][:3] if s not in moved]
                by_owner[first] = by_owner[first][6:]
                for p in others:
                    by_owner[p] = by_owner[p][3:]
                moved.update(s for s, _ in moves)
                await _migrate(cluster, moves)
            elif second is None and slot not in moved and owner0[slot] != first:
                # The first master is done: slots of the last one move onto it.
                second = owner0[slot]
                last = next(p for p in ports if p not in (first, second))
                moves = [(s, first) for s in by_owner[last][:4]]
                moved.update(s for s, _ in moves)
                await _migrate(cluster, moves)
        counts = collections.Counter(found)
        assert [k for k, n in counts.items() if n > 1] == []  # no key twice
        missing = set(keys) - set(found)
        assert sorted(missing) == []  # every key that existed throughout
        assert second is not None  # the second wave of moves did happen
        await asyncio.to_thread(migration.move_keys)
        await asyncio.to_thread(migration.finish)
        # A second pass after the moves is complete too.
        again = [k async for k in pool.iscan(count=50)]
        assert sorted(again) == sorted(keys)
    finally:
        pool.close()
        await pool.wait_closed()


# -- the coverage rules, without a server ------------------------------------------

_NODES = (
    "aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-99 150 200 [150->-bbb]\n"
    "bbb 127.0.0.1:7001@17001 master - 0 0 2 connected 100-149\n"
)
_TARGET = "bbb 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 100-149 [150-<-aaa]\n"


def test_parse_own_slots_reads_the_myself_line() -> None:
    view = parse_own_slots(_NODES.encode())
    assert view.node_id == "aaa"
    assert view.owned == frozenset(range(100)) | {150, 200}
    assert view.migrating == {150: "bbb"} and view.importing == {}
    assert view.stable() == frozenset(range(100)) | {200}  # 150 is leaving
    target = parse_own_slots(_TARGET)
    assert target.importing == {150: "aaa"} and target.owned == frozenset(range(100, 150))
    with pytest.raises(ValueError):
        parse_own_slots(b"bbb 127.0.0.1:7001@17001 master - 0 0 2 connected 1\n")


def test_parse_own_slots_reads_the_config_epoch_and_every_nodes_slots() -> None:
    view = parse_own_slots(_NODES)
    assert view.epoch == 1
    assert view.assigned == frozenset(range(151)) | {200}  # slots any node owns


def test_a_scan_during_which_the_nodes_config_epoch_changed_covers_nothing() -> None:
    # A slot that left and came back ends with the node importing it: a new epoch.
    state = _Pass()
    before = NodeSlots("aaa", frozenset({1, 2}), epoch=3)
    scan = _Scanned(0, before, NodeSlots("aaa", frozenset({1, 2}), epoch=5))
    state.settle(scan, {"aaa": scan})
    assert state.covered == set()


def _migrating_pair(source_first: bool) -> set[int]:
    source = NodeSlots("aaa", frozenset({1, 150}), {150: "bbb"})
    target = NodeSlots("bbb", frozenset({2}), importing={150: "aaa"})
    state = _Pass()
    scans: dict[str, _Scanned] = {}
    for order, view in enumerate((source, target) if source_first else (target, source)):
        scans[view.node_id] = _Scanned(order, view, view)
        state.settle(scans[view.node_id], scans)
    return state.covered


def test_a_migrating_slot_is_covered_only_when_its_source_was_scanned_first() -> None:
    assert _migrating_pair(source_first=True) == {1, 2, 150}
    assert _migrating_pair(source_first=False) == {1, 2}


def test_a_slot_whose_owner_changed_during_the_scan_is_not_covered() -> None:
    state = _Pass()
    scan = _Scanned(0, NodeSlots("aaa", frozenset({1, 2})), NodeSlots("aaa", frozenset({2, 3})))
    state.settle(scan, {"aaa": scan})
    assert state.covered == {2}


async def test_scan_of_a_pool_closed_midway_fails_at_once(redis_cluster: LocalCluster) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1], maxsize=2)
    keys = [f"scanclose:{i}".encode() for i in range(200)]
    await pool.execute(b"MSET", *(x for k in keys for x in (k, b"1")))
    scan = pool.iscan(match="scanclose:*", count=10)
    try:
        assert await scan.__anext__() in keys
        await pool.execute(b"DEL", *keys)
        pool.close()
        with pytest.raises(PoolClosedError):
            await asyncio.wait_for(_drain(scan), 2)
    finally:
        await scan.aclose()
        pool.close()
        await pool.wait_closed()


async def _drain(scan: AsyncIterator[bytes]) -> None:
    async for _key in scan:
        pass


class _FakeNode:
    """A node answering CLUSTER NODES with ``nodes`` and SCAN with ``keys`` (one page)."""

    def __init__(self, nodes: str, keys: list[bytes]) -> None:
        self.nodes, self.keys = nodes, keys

    async def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> Any:
        if command == b"CLUSTER":
            return self.nodes.encode()
        return b"0", list(self.keys)


class _FakeCluster:
    """A ScanTarget whose map lists ``known`` masters until ``refresh`` adds ``late``."""

    closed = False

    def __init__(self, known: list[NodeInfo], late: list[NodeInfo]) -> None:
        self.known, self.late = known, late
        self.slot_map: SlotMap | None = self._map()

    def _map(self) -> SlotMap:
        shards: list[Shard | None] = [None] * 16384
        for node in self.known:
            for slot in _OWNED[node.node_id]:
                shards[slot] = Shard(node)
        return SlotMap(tuple(shards), nodes=tuple(self.known))

    async def refresh(self) -> None:
        self.known, self.late = self.known + self.late, []
        self.slot_map = self._map()


_LATE_SLOT = key_slot(b"{late}")
_OWNED = {"aaa": set(range(16384)) - {_LATE_SLOT}, "ccc": {_LATE_SLOT}}


async def test_a_slot_unassigned_in_the_map_but_assigned_by_a_node_is_not_skipped() -> None:
    # The pool's map shows _LATE_SLOT unassigned; aaa has heard that ccc (a node
    # the map does not list yet) owns it. The scan must not take it as empty.
    others = f"0-{_LATE_SLOT - 1} {_LATE_SLOT + 1}-16383"
    views = {
        ("127.0.0.1", 7000): _FakeNode(
            f"aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected {others}\n"
            f"ccc 127.0.0.1:7002@17002 master - 0 0 3 connected {_LATE_SLOT}\n",
            [b"a:1"],
        ),
        ("127.0.0.1", 7002): _FakeNode(
            f"ccc 127.0.0.1:7002@17002 myself,master - 0 0 3 connected {_LATE_SLOT}\n"
            f"aaa 127.0.0.1:7000@17000 master - 0 0 1 connected {others}\n",
            [b"{late}:1"],
        ),
    }
    cluster = _FakeCluster(
        [NodeInfo(("127.0.0.1", 7000), "aaa")], [NodeInfo(("127.0.0.1", 7002), "ccc")]
    )
    scan = cluster_scan(cluster, refresh=cluster.refresh, node=views.__getitem__)
    assert sorted([key async for key in scan]) == [b"a:1", b"{late}:1"]
