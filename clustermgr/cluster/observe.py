"""What a new slot map means, as events: the diff, failovers, nodes failing and recovering.

:func:`map_events` compares two :class:`~clustermgr.cluster.topology.SlotMap`
views; :class:`NodeHealth` remembers which nodes were reported down so that
each NodeDown is followed by at most one NodeUp. Both run only when the slot
map changes or a node fails, never per command.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..events import (
    Event,
    FailoverDetected,
    NodeDown,
    NodeUp,
    RoleChange,
    SlotMove,
    TopologyChanged,
)
from .topology import Address, SlotMap

__all__ = ["NodeHealth", "map_events", "slot_moves"]


def _owner(shard: object) -> Address | None:
    master = getattr(shard, "master", None)
    return master.address if master is not None else None


def slot_moves(old: SlotMap | None, new: SlotMap) -> tuple[SlotMove, ...]:
    """Runs of slots whose master differs between ``old`` and ``new``."""
    moves: list[SlotMove] = []
    old_shards = old.shards if old is not None else (None,) * len(new.shards)
    for slot, (a, b) in enumerate(zip(old_shards, new.shards, strict=True)):
        before, after = _owner(a), _owner(b)
        if before == after:
            continue
        last = moves[-1] if moves else None
        if last is not None and last.last == slot - 1 and (last.old, last.new) == (before, after):
            moves[-1] = SlotMove(last.first, slot, before, after)
        else:
            moves.append(SlotMove(slot, slot, before, after))
    return tuple(moves)


def _roles(view: SlotMap | None) -> dict[Address, str]:
    if view is None:
        return {}
    roles = {n.address: n.role for n in view.nodes}
    roles.update({m.address: "master" for m in view.masters})
    return roles


def _replicas_of(view: SlotMap, master: Address) -> set[Address]:
    for shard in view.shards:
        if shard is not None and shard.master.address == master:
            return {r.address for r in shard.replicas}
    return set()


def map_events(
    old: SlotMap | None, new: SlotMap, reasons: Iterable[str]
) -> list[Event]:
    """TopologyChanged (if anything changed) and a FailoverDetected per promoted replica."""
    moves = slot_moves(old, new)
    before, after = _roles(old), _roles(new)
    added = tuple(sorted(a for a in after if a not in before))
    removed = tuple(sorted(a for a in before if a not in after))
    roles = tuple(
        RoleChange(address, before[address], role)
        for address, role in sorted(after.items())
        if address in before and before[address] != role
    )
    if not (moves or added or removed or roles):
        return []
    why = tuple(sorted(reasons))
    events: list[Event] = [
        TopologyChanged(new.epoch, new.source, why, moves, added, removed, roles)
    ]
    if old is None:
        return events
    promoted: dict[tuple[Address | None, Address | None], None] = {}
    for move in moves:
        if move.old is not None and move.new is not None and move.new in _replicas_of(
            old, move.old
        ):
            promoted[(move.old, move.new)] = None
    for old_master, new_master in promoted:
        events.append(FailoverDetected(
            old_master, new_master, detected_by="slot map: replica promoted (" + ",".join(why)
            + ")",
        ))
    return events


class NodeHealth:
    """Which nodes are down, as far as this pool knows; turns reports into events."""

    def __init__(self) -> None:
        self._down: dict[Address, str] = {}

    @property
    def down(self) -> frozenset[Address]:
        """Nodes reported down and not seen up since."""
        return frozenset(self._down)

    def report(self, address: Address, up: bool, reason: str) -> Event | None:
        """Record a node's state; returns NodeDown/NodeUp when it changed."""
        if up:
            if self._down.pop(address, None) is None:
                return None
            return NodeUp(address, reason)
        if address in self._down:
            return None
        self._down[address] = reason
        return NodeDown(address, reason)

    def from_map(self, view: SlotMap) -> list[Event]:
        """Reports from a map's health fields (CLUSTER SHARDS: online, failed, loading)."""
        events: list[Event] = []
        for node in view.nodes:
            if node.health == "loading":
                continue
            event = self.report(node.address, node.is_healthy, f"slot map says {node.health}")
            if event is not None:
                events.append(event)
        return events
