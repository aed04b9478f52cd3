"""What a new slot map means, as events: the diff and the failovers.

:func:`map_events` compares two :class:`~clustermgr.cluster.topology.SlotMap`
views; it runs only when the slot map changes, never per command. Nodes
failing and recovering are tracked by :class:`clustermgr.health.NodeHealth`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..events import (
    Event,
    FailoverDetected,
    RoleChange,
    SlotMove,
    TopologyChanged,
)
from ..slots import SLOT_COUNT
from .topology import Address, SlotMap

__all__ = ["map_events", "slot_moves"]


def _owner(shard: object) -> Address | None:
    master = getattr(shard, "master", None)
    return master.address if master is not None else None


def slot_moves(old: SlotMap | None, new: SlotMap) -> tuple[SlotMove, ...]:
    """Runs of slots whose master differs between ``old`` and ``new``.

    Compared per run of slots (the cuts of both maps), not per slot: this
    runs inside each map apply, on the event loop, while a failover is
    being followed."""
    moves: list[SlotMove] = []
    cuts = sorted({*old.starts, *new.starts}) if old is not None else new.starts
    old_shards = old.shards if old is not None else None
    for start, end in zip(cuts, [*cuts[1:], SLOT_COUNT], strict=True):
        before = _owner(old_shards[start]) if old_shards is not None else None
        after = _owner(new.shards[start])
        if before == after:
            continue
        last = moves[-1] if moves else None
        if last is not None and last.last == start - 1 and (last.old, last.new) == (before, after):
            moves[-1] = SlotMove(last.first, end - 1, before, after)
        else:
            moves.append(SlotMove(start, end - 1, before, after))
    return tuple(moves)


def _roles(view: SlotMap | None) -> dict[Address, str]:
    if view is None:
        return {}
    roles = {n.address: n.role for n in view.nodes}
    roles.update({m.address: "master" for m in view.masters})
    return roles


def _replicas_of(view: SlotMap, master: Address) -> set[Address]:
    for shard in view.distinct:
        if shard.master.address == master:
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

