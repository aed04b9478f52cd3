"""map_events: what a new slot map means, computed per run of slots (no server needed).

A pool that has event listeners runs :func:`map_events` inside every map
apply, on the event loop, at the moment a failover is followed: it must cost
what the runs of slots cost (a handful per shard), not 16384 Python steps
(12-20 ms, a write gap on every other shard during each failover).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clustermgr.cluster.observe import map_events, slot_moves
from clustermgr.cluster.topology import NodeInfo, Shard, SlotMap
from clustermgr.events import FailoverDetected, SlotMove, TopologyChanged
from clustermgr.slots import SLOT_COUNT

_reads = [0]


class CountingShard(Shard):
    """A shard that counts how often its ``master`` is read."""

    def __getattribute__(self, name: str) -> Any:
        if name == "master":
            _reads[0] += 1
        return super().__getattribute__(name)


def _node(port: int, role: str = "master") -> NodeInfo:
    return NodeInfo(("127.0.0.1", port), node_id=f"n{port}", role=role)


def _map(runs: list[tuple[int, int, Shard | None]], epoch: int = 1) -> SlotMap:
    """A map from ``(first, last, shard)`` runs (later runs win)."""
    slots: list[Shard | None] = [None] * SLOT_COUNT
    nodes: dict[tuple[str, int], NodeInfo] = {}
    for first, last, shard in runs:
        slots[first : last + 1] = [shard] * (last - first + 1)
        if shard is not None:
            for node in (shard.master, *shard.replicas):
                nodes.setdefault(node.address, node)
    return SlotMap(tuple(slots), epoch, ("127.0.0.1", 7000), tuple(nodes.values()))


def _reference_moves(old: SlotMap | None, new: SlotMap) -> tuple[SlotMove, ...]:
    """Slot moves computed slot by slot (the oracle)."""
    def owner(shard: Shard | None) -> tuple[str, int] | None:
        return None if shard is None else shard.master.address

    moves: list[SlotMove] = []
    old_shards = old.shards if old is not None else (None,) * SLOT_COUNT
    for slot in range(SLOT_COUNT):
        before, after = owner(old_shards[slot]), owner(new.shards[slot])
        if before == after:
            continue
        last = moves[-1] if moves else None
        if last is not None and last.last == slot - 1 and (last.old, last.new) == (before, after):
            moves[-1] = SlotMove(last.first, slot, before, after)
        else:
            moves.append(SlotMove(slot, slot, before, after))
    return tuple(moves)


def _three_shards(cls: type[Shard]) -> tuple[SlotMap, SlotMap]:
    """A 3+3 cluster before and after the first master's replica is promoted."""
    shards = [cls(_node(7000 + i), (_node(7003 + i, "replica"),)) for i in range(3)]
    promoted = cls(_node(7003), (_node(7000, "replica"),))
    bounds = [(0, 5460), (5461, 10922), (10923, 16383)]
    old = _map([(a, b, s) for (a, b), s in zip(bounds, shards, strict=True)])
    new = _map([(a, b, s) for (a, b), s in zip(bounds, [promoted, *shards[1:]], strict=True)], 2)
    return old, new


def test_a_failover_reads_each_run_not_each_slot() -> None:
    """The events of a 3-shard failover read the shards' owners a few times per run."""
    old, new = _three_shards(CountingShard)
    old.starts, new.starts, old.distinct, new.distinct  # noqa: B018 - the map's own caches
    _reads[0] = 0
    events = map_events(old, new, ["test"])
    assert _reads[0] < 100, f"{_reads[0]} reads of a shard's master for 3 runs of slots"
    changed = events[0]
    assert isinstance(changed, TopologyChanged)
    assert changed.moved == (SlotMove(0, 5460, ("127.0.0.1", 7000), ("127.0.0.1", 7003)),)
    assert [(e.old_master, e.new_master) for e in events[1:] if isinstance(e, FailoverDetected)
            ] == [(("127.0.0.1", 7000), ("127.0.0.1", 7003))]
    assert len(events) == 2


_runs = st.lists(
    st.tuples(st.integers(0, SLOT_COUNT - 1), st.integers(0, 300), st.integers(0, 4)),
    max_size=8,
)


def _from_runs(runs: list[tuple[int, int, int]], shards: list[Shard | None]) -> SlotMap:
    return _map([(first, min(SLOT_COUNT - 1, first + size), shards[which])
                 for first, size, which in runs])


@settings(max_examples=60, deadline=None)
@given(_runs, _runs, st.booleans())
def test_slot_moves_match_the_slot_by_slot_answer(
    before: list[tuple[int, int, int]], after: list[tuple[int, int, int]], fresh: bool
) -> None:
    """Moves merge adjacent slots with the same old and new owner, as slot by slot;
    distinct shard objects of one owner (a merged map) move nothing."""
    masters = [_node(7000), _node(7001), _node(7002)]
    shards: list[Shard | None] = [None, *(Shard(m) for m in masters), Shard(masters[0])]
    old = None if fresh else _from_runs(before, shards)
    new = _from_runs(after, shards)
    assert slot_moves(old, new) == _reference_moves(old, new)
