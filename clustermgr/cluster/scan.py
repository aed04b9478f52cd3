"""Cluster-wide SCAN: each key that exists for the whole pass is yielded exactly once.

Coverage is tracked by slot, not by node address. A pass runs in rounds; in
each round every master the pool's slot map lists (those serving slots and
those with none yet, e.g. a new node a slot is being migrated onto) is
scanned with ``SCAN`` (its own cursor, ``MATCH``/``COUNT`` passed through),
between two reads of that node's own view (the ``myself`` line of ``CLUSTER
NODES``: the slots it owns, those it is migrating or importing, and its
config epoch).

* Only keys of candidate slots (owned or importing at the start of that
  node's scan, not yet covered) are yielded, each once: keys yielded for a
  slot are remembered until the slot is covered (SCAN itself may return a key
  twice), then forgotten, so memory is bounded by the keys of one node.
* A slot is **covered** by a node's scan when the node owned it, not
  migrating, both before and after the scan, and the node's config epoch did
  not change: every key of the slot that existed throughout was on that node
  throughout, so SCAN returned it. (A slot that leaves a node and comes back
  during its scan -- keys re-inserted where the cursor has passed -- ends
  with the node importing it, which bumps the node's config epoch: Redis
  does so unless the node already holds the cluster's greatest epoch, and
  the node the slot left for took a greater one when it imported the slot.)
* A slot **migrating** from A to B (A ``MIGRATING``, B ``IMPORTING``, the
  same at the start and end of both scans, neither epoch changed) is covered
  when A's scan ended before B's began: keys only move from A to B, so a key
  A's scan missed was already on B for all of B's scan. Rounds alternate the
  node order so that a pair scanned the wrong way round is scanned the right
  way in the next one.
* Slots whose owner changed, or that no scanned node could vouch for (a node
  failed mid-scan, a new master not yet in the map), are left for the next
  round after the pool refreshed its map. A node that fails is skipped for
  the round. A slot counts as holding no keys only when, in a round where
  every master was scanned, no node claims it in its own view, no node's
  ``CLUSTER NODES`` assigns it to anyone, and the map shows it unassigned.

Cost of a quiet pass: one SCAN per master plus two ``CLUSTER NODES``; a
move during the pass costs one more scan of the nodes involved. Limit left:
a node the map does not list (not even slotless) whose claim on a slot no
scanned node has heard of yet is not seen in that round.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..backoff import Backoff
from ..errors import ClusterRetryError, ConnectError, ConnectionClosedError, PoolClosedError
from ..slots import SLOT_COUNT, key_slot
from .topology import SlotMap

__all__ = ["NodeSlots", "ScanTarget", "cluster_scan", "parse_own_slots"]

Address = tuple[str, int]

_MAX_ROUNDS = 20
# Before a round that follows one without progress: 0.02 s, doubling, at most 0.5 s.
_STALLED = Backoff(base=0.02, cap=0.5, jitter=1.0)
_NODE_ERRORS = (ConnectionClosedError, ConnectError, PoolClosedError)


class NodeExecutor(Protocol):
    """What a scan needs of one node's pool."""

    def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Run one command on that node."""


class ScanTarget(Protocol):
    """What a scan needs of a cluster pool (a narrow view of :class:`ClusterPool`)."""

    @property
    def slot_map(self) -> SlotMap | None:
        """The slot map last applied."""

    @property
    def closed(self) -> bool:
        """True once the pool is closing or closed."""


@dataclass(frozen=True)
class NodeSlots:
    """One node's own view of its slots (``CLUSTER NODES``, the ``myself`` line)."""

    node_id: str
    owned: frozenset[int] = frozenset()
    migrating: Mapping[int, str] = field(default_factory=dict)  # slot -> target id
    importing: Mapping[int, str] = field(default_factory=dict)  # slot -> source id
    epoch: int = 0  # the node's config epoch
    assigned: frozenset[int] = frozenset()  # slots it sees assigned to any node

    def stable(self) -> frozenset[int]:
        """Owned slots that are not being migrated away."""
        return self.owned - self.migrating.keys()


def parse_own_slots(reply: Any) -> NodeSlots:
    """The :class:`NodeSlots` of the node that answered ``CLUSTER NODES`` with ``reply``."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    own: NodeSlots | None = None
    assigned: set[int] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        owned: set[int] = set()
        migrating: dict[int, str] = {}
        importing: dict[int, str] = {}
        for item in fields[8:]:
            if item.startswith("["):
                slot, arrow, peer = item.strip("[]").partition("->-")
                if arrow:
                    migrating[int(slot)] = peer
                else:
                    slot, _, peer = item.strip("[]").partition("-<-")
                    importing[int(slot)] = peer
                continue
            first, _, last = item.partition("-")
            owned.update(range(int(first), int(last or first) + 1))
        assigned |= owned
        if "myself" in fields[2].split(","):
            own = NodeSlots(fields[0], frozenset(owned), migrating, importing, int(fields[6]))
    if own is None:
        raise ValueError("CLUSTER NODES reply has no 'myself' line")
    return replace(own, assigned=frozenset(assigned))


@dataclass
class _Scanned:
    """One node's scan in the current round: its views before and after."""

    order: int
    before: NodeSlots
    after: NodeSlots


class _Pass:
    """The state of one pass: slots covered, keys yielded for uncovered slots."""

    def __init__(self) -> None:
        self.covered: set[int] = set()
        self.yielded: dict[int, set[Any]] = {}

    def candidates(self, view: NodeSlots) -> set[int]:
        """Slots whose keys a scan of the node with ``view`` may yield."""
        return (set(view.owned) | set(view.importing)) - self.covered

    def first_time(self, slot: int, key: Any) -> bool:
        seen = self.yielded.setdefault(slot, set())
        if key in seen:
            return False
        seen.add(key)
        return True

    def cover(self, slots: set[int]) -> None:
        self.covered |= slots
        for slot in slots:
            self.yielded.pop(slot, None)

    def settle(self, scan: _Scanned, round_scans: Mapping[str, _Scanned]) -> None:
        """Cover what ``scan`` (just finished) proves, alone or with an earlier source's."""
        before, after = scan.before, scan.after
        if before.epoch != after.epoch:  # e.g. a slot left and came back: prove nothing
            return
        self.cover(set(before.stable() & after.stable()) - self.covered)
        for slot, source_id in before.importing.items():
            source = round_scans.get(source_id)
            if (
                slot not in self.covered
                and after.importing.get(slot) == source_id
                and source is not None
                and source.order < scan.order
                and source.before.epoch == source.after.epoch
                and source.before.migrating.get(slot) == before.node_id
                and source.after.migrating.get(slot) == before.node_id
            ):
                self.cover({slot})


async def _view(node: NodeExecutor) -> NodeSlots:
    return parse_own_slots(await node.execute(b"CLUSTER", b"NODES", encoding=None))


def _masters(slot_map: SlotMap | None) -> list[Address]:
    """Every master the map lists: serving slots, or online with none yet."""
    if slot_map is None:
        return []
    serving = {m.address for m in slot_map.masters}
    others = {n.address for n in slot_map.nodes if n.is_master and n.is_healthy}
    return sorted(serving | others)


async def cluster_scan(
    cluster: ScanTarget,
    *,
    refresh: Callable[[], Awaitable[None]],
    node: Callable[[Address], NodeExecutor],
    match: bytes | str | None = None,
    count: int | None = None,
) -> AsyncIterator[Any]:
    """Yield every key of the cluster once per pass (``SCAN`` per master, see module doc).

    ``refresh`` reloads the pool's slot map (called between rounds); ``node``
    gives the executor of a node by address (opening it if needed). Raises
    :class:`ClusterRetryError` when slots are still uncovered after
    ``_MAX_ROUNDS`` rounds (the topology kept changing).
    """
    extra: list[Any] = []
    if match is not None:
        extra += [b"MATCH", match]
    if count is not None:
        extra += [b"COUNT", count]
    state = _Pass()
    last_error: BaseException | None = None
    stalled = 0
    for round_number in range(_MAX_ROUNDS):
        if cluster.closed:
            raise PoolClosedError("cluster pool was closed during SCAN")
        if round_number or cluster.slot_map is None:
            await refresh()
        if stalled:  # e.g. a migration to a master the map does not show yet
            await _STALLED.sleep(stalled)
        covered_before = len(state.covered)
        failed = False
        slot_map = cluster.slot_map
        masters = _masters(slot_map)
        if round_number % 2:
            masters.reverse()
        round_scans: dict[str, _Scanned] = {}
        claimed: set[int] = set()
        for address in masters:
            executor = node(address)
            try:
                before = await _view(executor)
                claimed |= before.owned | before.importing.keys() | before.assigned
                wanted = state.candidates(before)
                if not wanted:
                    continue
                cursor: Any = 0
                while True:
                    cursor, keys = await executor.execute(b"SCAN", cursor, *extra)
                    for key in keys:
                        slot = key_slot(key)
                        if slot in wanted and state.first_time(slot, key):
                            yield key
                    if int(cursor) == 0:
                        break
                after = await _view(executor)
            except _NODE_ERRORS as exc:
                last_error, failed = exc, True
                continue
            claimed |= after.owned | after.importing.keys() | after.assigned
            scan = _Scanned(len(round_scans), before, after)
            round_scans[before.node_id] = scan
            state.settle(scan, round_scans)
        if slot_map is not None and claimed and not failed:
            state.cover({
                slot for slot in range(SLOT_COUNT)
                if slot not in claimed and slot_map.shards[slot] is None
            })
        if len(state.covered) == SLOT_COUNT:
            return
        stalled = 0 if len(state.covered) > covered_before else stalled + 1
    missing = SLOT_COUNT - len(state.covered)
    raise ClusterRetryError(
        f"SCAN: {missing} slots still uncovered after {_MAX_ROUNDS} rounds "
        "(the topology kept changing)", last_error,
    )
