"""The cluster's shape: which node serves which slot, parsed into an immutable map.

:func:`parse_shards` reads ``CLUSTER SHARDS`` (Redis 7: roles, health,
hostnames), :func:`parse_slots` reads ``CLUSTER SLOTS`` (older servers). Both
build a :class:`SlotMap`: a 16384-entry tuple ``slot -> Shard`` for O(1)
lookup plus the nodes it names; :func:`parse_config_epochs` reads each
master's config epoch from ``CLUSTER NODES``. :func:`merge_views` merges
several nodes' views the way Redis settles slot ownership (the claim of the
highest config epoch wins), and :func:`diff_maps` says what changed between
two maps, so pools are created and closed only for nodes that came or went.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import operator
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import NoPermissionError, ProtocolError, ReplyError
from ..protocol import to_text
from ..remap import AddressRemap, remap_address
from ..slots import SLOT_COUNT

__all__ = [
    "MapDiff",
    "NodeInfo",
    "Shard",
    "SlotMap",
    "diff_maps",
    "merge_views",
    "parse_config_epochs",
    "parse_epoch",
    "parse_shards",
    "parse_slots",
    "read_slot_map",
]

Address = tuple[str, int]


@dataclass(frozen=True)
class NodeInfo:
    """One cluster node as a topology view describes it."""

    address: Address
    node_id: str = ""
    role: str = "master"  # "master" or "replica"
    health: str = "online"  # "online", "failed" or "loading"
    replication_offset: int = 0
    hostname: str = ""
    config_epoch: int = 0  # a master's, as the view knows it (0: unknown)

    @property
    def is_master(self) -> bool:
        """True for a master."""
        return self.role == "master"

    @property
    def is_healthy(self) -> bool:
        """True when the view reports the node online."""
        return self.health == "online"

    @property
    def text(self) -> str:
        """``host:port`` for messages."""
        return f"{self.address[0]}:{self.address[1]}"


@dataclass(frozen=True)
class Shard:
    """A master and its replicas (the replicas usable for reads come first)."""

    master: NodeInfo
    replicas: tuple[NodeInfo, ...] = ()

    @property
    def healthy_replicas(self) -> tuple[NodeInfo, ...]:
        """Replicas reported online."""
        return tuple(r for r in self.replicas if r.is_healthy)


@dataclass(frozen=True)
class SlotMap:
    """An immutable slot map: ``shards[slot]`` is the :class:`Shard` serving it or None."""

    shards: tuple[Shard | None, ...]
    epoch: int = 0
    source: Address | None = None
    nodes: tuple[NodeInfo, ...] = field(default=())
    #: ``cluster_state:ok`` (merged: every view said so); False while it said ``fail``.
    state_ok: bool = True

    @functools.cached_property
    def starts(self) -> list[int]:
        """The first slot of each run of slots served by one shard object."""
        return _run_starts(self.shards)

    @functools.cached_property
    def distinct(self) -> tuple[Shard, ...]:
        """Each shard serving a slot once, by identity (no hashing of 16384 entries)."""
        found: dict[int, Shard] = {}
        shards = self.shards
        for start in self.starts:
            shard = shards[start]
            if shard is not None:
                found.setdefault(id(shard), shard)
        return tuple(found.values())

    @functools.cached_property
    def covered(self) -> int:
        """Number of slots with an owner."""
        return SLOT_COUNT - sum(map(operator.is_, self.shards, itertools.repeat(None)))

    @property
    def masters(self) -> tuple[NodeInfo, ...]:
        """Masters serving at least one slot, ordered by address."""
        found = {s.master.address: s.master for s in self.distinct}
        return tuple(found[a] for a in sorted(found))

    def addresses(self, *, replicas: bool = False) -> frozenset[Address]:
        """Addresses of the serving masters, and of their replicas if asked."""
        result: set[Address] = set()
        for shard in self.distinct:
            result.add(shard.master.address)
            if replicas:
                result.update(r.address for r in shard.replicas)
        return frozenset(result)

    def ranges(self) -> list[tuple[int, int, Address]]:
        """``(first, last, master address)`` for each run of slots, for logs and tests."""
        out: list[tuple[int, int, Address]] = []
        for slot, shard in enumerate(self.shards):
            if shard is None:
                continue
            address = shard.master.address
            if out and out[-1][2] == address and out[-1][1] == slot - 1:
                out[-1] = (out[-1][0], slot, address)
            else:
                out.append((slot, slot, address))
        return out


@dataclass(frozen=True)
class MapDiff:
    """What changed between two slot maps."""

    added: frozenset[Address]
    removed: frozenset[Address]
    moved_slots: int

    @property
    def changed(self) -> bool:
        """True if any node or slot owner changed."""
        return bool(self.added or self.removed or self.moved_slots)


def _pairs(items: Sequence[Any]) -> dict[str, Any]:
    if isinstance(items, dict):
        return {to_text(k): v for k, v in items.items()}
    return {to_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _endpoint(endpoint: Any, ip: Any, default_host: str) -> str:
    """The host to reach a node on, as Redis documents the endpoint field.

    Empty or NULL (``unknown-endpoint``, or a node that does not know its own
    address): the host that sent the reply. ``?`` (hostname preferred, none
    announced): an unknown node, not necessarily the one that answered --
    reached on its ip when one is listed.
    """
    host = "" if endpoint is None else to_text(endpoint)
    if host == "?":
        host = "" if ip is None else to_text(ip)
    return host or default_host


def _node_from_shards(
    entry: Sequence[Any], default_host: str, tls: bool, epochs: Mapping[str, int],
    remap: AddressRemap | None,
) -> NodeInfo:
    info = _pairs(entry)
    endpoint = info["endpoint"] if "endpoint" in info else info.get("ip")
    host = _endpoint(endpoint, info.get("ip"), default_host)
    # A node may list both: TLS clients use the TLS port, plaintext ones the other.
    wanted, other = ("tls-port", "port") if tls else ("port", "tls-port")
    port = info.get(wanted) or info.get(other)
    if port is None:
        raise ProtocolError(f"CLUSTER SHARDS node without a port: {entry!r}")
    node_id = to_text(info.get("id", ""))
    return NodeInfo(
        address=remap_address(remap, (host, int(port))),
        node_id=node_id,
        role="master" if to_text(info.get("role", "master")) == "master" else "replica",
        health=to_text(info.get("health", "online")),
        replication_offset=int(info.get("replication-offset", 0) or 0),
        hostname=to_text(info.get("hostname", "")),
        config_epoch=epochs.get(node_id, 0),
    )


def _owner_rank(source: Address | None, master: NodeInfo) -> tuple[int, bool, bool]:
    """How surely ``master`` owns its shard's slots, among the shard's masters.

    A shard can list two masters: with shard ids (Valkey 8, Redis 7.2) a dead
    master that lost a ``CLUSTER FAILOVER TAKEOVER`` stays in its shard, first
    and still ``online`` until it is flagged FAIL, beside the promoted replica.
    The slots are the claim of the highest config epoch (as Redis settles
    them); with epochs unknown (0), an online master, then the one answering.
    """
    return (master.config_epoch, master.is_healthy, master.address == source)


def _fill(
    slots: list[Shard | None], first: int, last: int, shard: Shard, covered: int
) -> int:
    """``slots[first..last] = shard``; returns ``covered`` plus the range's size.

    IndexError for a slot outside 0-16383, or once the ranges so far cover
    more than 16384 slots (an empty range counts as one): a hostile view
    repeating the whole range is refused before it costs seconds of filling.
    """
    if first < 0 or last >= SLOT_COUNT:
        raise IndexError(f"slot range {first}-{last} outside 0-{SLOT_COUNT - 1}")
    covered += max(1, last - first + 1)
    if covered > SLOT_COUNT:
        raise IndexError(f"slot ranges cover more than {SLOT_COUNT} slots")
    if first <= last:
        slots[first : last + 1] = [shard] * (last - first + 1)
    return covered


def parse_shards(
    reply: Any,
    *,
    epoch: int = 0,
    source: Address | None = None,
    tls: bool = False,
    config_epochs: Mapping[str, int] | None = None,
    remap: AddressRemap | None = None,
) -> SlotMap:
    """Build a :class:`SlotMap` from a ``CLUSTER SHARDS`` reply.

    ``source`` is the node that answered (its host replaces an empty
    endpoint, see :func:`_endpoint`); ``epoch`` is its ``cluster_current_epoch``.
    ``remap`` turns each announced address into the one to connect to
    (:mod:`clustermgr.remap`). With ``tls`` each
    node's ``tls-port`` is used when listed (else its ``port``), without it
    the other way round. ``config_epochs`` (node id -> config epoch, see
    :func:`parse_config_epochs`) fills :attr:`NodeInfo.config_epoch`.
    """
    epochs = config_epochs or {}
    default_host = source[0] if source else "127.0.0.1"
    slots: list[Shard | None] = [None] * SLOT_COUNT
    nodes: list[NodeInfo] = []
    covered = 0
    try:
        for raw in reply:
            shard_info = _pairs(raw)
            members = [
                _node_from_shards(n, default_host, tls, epochs, remap)
                for n in shard_info.get("nodes", ())
            ]
            nodes.extend(members)
            masters = [m for m in members if m.is_master]
            bounds = [int(b) for b in shard_info.get("slots", ())]
            if not masters or not bounds:
                continue
            master = max(masters, key=functools.partial(_owner_rank, source))
            replicas = tuple(
                sorted(
                    (m for m in members if not m.is_master),
                    key=lambda r: (not r.is_healthy, r.address),
                )
            )
            shard = Shard(master, replicas)
            for i in range(0, len(bounds) - 1, 2):
                covered = _fill(slots, bounds[i], bounds[i + 1], shard, covered)
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise ProtocolError(f"cannot parse CLUSTER SHARDS reply: {exc}") from exc
    return SlotMap(tuple(slots), epoch, source, tuple(nodes))


def parse_slots(
    reply: Any,
    *,
    epoch: int = 0,
    source: Address | None = None,
    config_epochs: Mapping[str, int] | None = None,
    remap: AddressRemap | None = None,
) -> SlotMap:
    """Build a :class:`SlotMap` from a ``CLUSTER SLOTS`` reply (servers before 7.0).

    Endpoints and ``remap`` as in :func:`parse_shards` (the ip of a ``?``
    endpoint is in the entry's metadata, Redis 7).
    """
    epochs = config_epochs or {}
    default_host = source[0] if source else "127.0.0.1"
    slots: list[Shard | None] = [None] * SLOT_COUNT
    nodes: dict[Address, NodeInfo] = {}

    def node(entry: Sequence[Any], role: str) -> NodeInfo:
        metadata = _pairs(entry[3]) if len(entry) > 3 else {}
        host = _endpoint(entry[0], metadata.get("ip"), default_host)
        node_id = to_text(entry[2]) if len(entry) > 2 else ""
        info = NodeInfo(
            address=remap_address(remap, (host, int(entry[1]))),
            node_id=node_id,
            role=role,
            config_epoch=epochs.get(node_id, 0) if role == "master" else 0,
        )
        nodes.setdefault(info.address, info)
        return info

    covered = 0
    try:
        for entry in reply:
            start, end = int(entry[0]), int(entry[1])
            master = node(entry[2], "master")
            replicas = tuple(node(r, "replica") for r in entry[3:])
            shard = Shard(master, replicas)
            covered = _fill(slots, start, end, shard, covered)
    except (TypeError, ValueError, IndexError) as exc:
        raise ProtocolError(f"cannot parse CLUSTER SLOTS reply: {exc}") from exc
    return SlotMap(tuple(slots), epoch, source, tuple(nodes.values()))


def parse_epoch(info_reply: Any) -> int:
    """``cluster_current_epoch`` from a ``CLUSTER INFO`` reply (0 if absent)."""
    text = to_text(info_reply)
    for line in text.splitlines():
        if line.startswith("cluster_current_epoch:"):
            return int(line.split(":", 1)[1].strip() or 0)
    return 0


def parse_config_epochs(nodes_reply: Any) -> dict[str, int]:
    """``node id -> config epoch`` of the masters in a ``CLUSTER NODES`` reply.

    Replicas are left out: their line shows their master's epoch, not a claim.
    """
    epochs: dict[str, int] = {}
    for line in to_text(nodes_reply).splitlines():
        fields = line.split()
        if len(fields) < 8 or "master" not in fields[2].split(","):
            continue
        try:
            epochs[fields[0]] = int(fields[6])
        except ValueError as exc:
            raise ProtocolError(f"cannot parse CLUSTER NODES line: {line!r}") from exc
    return epochs


_Identity = str | Address


def _identity(node: NodeInfo) -> _Identity:
    return node.node_id or node.address


def _run_starts(shards: Sequence[Shard | None]) -> list[int]:
    """The first slot of each run of slots sharing one shard object (C-speed scan)."""
    changes = map(operator.is_not, shards[1:], shards[:-1])
    return [0, *itertools.compress(range(1, len(shards)), changes)]


def _view_key(view: SlotMap) -> tuple[int, int, Address]:
    return (view.epoch, view.covered, view.source or ("", -1))


def merge_views(current: SlotMap | None, views: Sequence[SlotMap]) -> SlotMap:
    """One slot map from several nodes' views, settled per slot as Redis does.

    Each view's owner of a slot is a claim ranked by the owner's config
    epoch in that view, then by being made by the owner itself, then by
    being fresh (from ``views``, not ``current``); ties go to the lowest
    address. ``current`` (the map in use) takes part so that a stale view
    can never move a slot back to an owner of lower config epoch; its claim
    counts only while some view still knows the owner (a cluster reset or a
    forgotten node does not pin old owners). The result depends only on the
    set of views (from distinct nodes), and merging again with the same
    views changes nothing. Each owner's replicas and health come from the
    view where its config epoch is highest (the owner's own view on a tie).
    ``views`` must not be empty.
    """
    if not views:
        raise ValueError("merge_views needs at least one view")
    ordered = sorted(views, key=_view_key, reverse=True)
    starts_per_view = [v.starts for v in ordered]
    known: set[_Identity] = set()
    freshest: dict[_Identity, tuple[tuple[int, bool, int], Shard]] = {}
    for index, (view, starts) in enumerate(zip(ordered, starts_per_view, strict=True)):
        known.update(_identity(n) for n in view.nodes)
        for start in starts:
            shard = view.shards[start]
            if shard is None:
                continue
            master = shard.master
            known.add(_identity(master))
            known.update(_identity(r) for r in shard.replicas)
            rank = (master.config_epoch, view.source == master.address, -index)
            ident = _identity(master)
            if ident not in freshest or rank > freshest[ident][0]:
                freshest[ident] = (rank, shard)
    sources: list[tuple[SlotMap, bool]] = [(v, True) for v in ordered]
    boundaries = set().union(*starts_per_view)
    if current is not None:
        sources.append((current, False))
        boundaries.update(current.starts)
    cuts = sorted(boundaries)
    out: list[Shard | None] = [None] * SLOT_COUNT
    built: dict[tuple[_Identity, int], Shard] = {}
    for start, end in zip(cuts, [*cuts[1:], SLOT_COUNT], strict=True):
        best: tuple[tuple[int, bool, bool, Address, str], Shard] | None = None
        for view, fresh in sources:
            shard = view.shards[start]
            if shard is None or (not fresh and _identity(shard.master) not in known):
                continue
            master = shard.master
            own = fresh and view.source == master.address
            key = (-master.config_epoch, not own, not fresh, master.address, master.node_id)
            if best is None or key < best[0]:
                best = (key, shard)
        if best is None:
            continue
        owner, epoch = _identity(best[1].master), -best[0][0]
        shard = built.get((owner, epoch))
        if shard is None:
            base = freshest[owner][1] if owner in freshest else best[1]
            shard = built[(owner, epoch)] = replace(
                base, master=replace(base.master, config_epoch=epoch)
            )
        out[start:end] = [shard] * (end - start)
    nodes = _merged_nodes(built.values(), ordered)
    state_ok = all(view.state_ok for view in ordered)
    return SlotMap(tuple(out), ordered[0].epoch, ordered[0].source, nodes, state_ok)


def _merged_nodes(shards: Iterable[Shard], ordered: Sequence[SlotMap]) -> tuple[NodeInfo, ...]:
    """Members of the merged shards, then any other node as the best view lists it."""
    found: dict[Address, NodeInfo] = {}
    for shard in shards:
        for node in (shard.master, *shard.replicas):
            found.setdefault(node.address, node)
    for view in ordered:
        for node in view.nodes:
            found.setdefault(node.address, node)
    return tuple(found.values())


def diff_maps(old: SlotMap | None, new: SlotMap, *, replicas: bool = False) -> MapDiff:
    """Nodes added and removed (by address) and slots whose master changed."""
    new_nodes = new.addresses(replicas=replicas)
    if old is None:
        return MapDiff(new_nodes, frozenset(), new.covered)
    old_nodes = old.addresses(replicas=replicas)
    cuts = sorted({*old.starts, *new.starts})
    moved = 0
    for start, end in zip(cuts, [*cuts[1:], SLOT_COUNT], strict=True):
        a, b = old.shards[start], new.shards[start]
        if (a.master.address if a else None) != (b.master.address if b else None):
            moved += end - start
    return MapDiff(new_nodes - old_nodes, old_nodes - new_nodes, moved)


async def read_slot_map(
    execute: Any,
    address: Address,
    *,
    tls: bool = False,
    info: Awaitable[Any] | None = None,
    remap: AddressRemap | None = None,
) -> SlotMap:
    """Read one node's view of the cluster through ``execute`` (a connection's or pool's).

    ``CLUSTER SHARDS`` with the node's ``CLUSTER INFO`` epoch and the masters'
    config epochs from ``CLUSTER NODES`` (whose ``ip:port`` column names the
    port of the asking connection's kind, so addresses come from SHARDS);
    ``CLUSTER SLOTS`` on servers older than Redis 7 (which name the port of
    the asking connection's kind). ``tls``: the caller connects with TLS, so nodes are
    reached on their ``tls-port``. A user denied ``CLUSTER INFO`` and ``CLUSTER
    NODES`` (ACL) still gets the map, with epochs unknown (0): views are then
    merged by coverage and source alone. ``info``: the node's ``CLUSTER INFO`` reply
    (on its way), when the caller sent it; else it is sent here. ``remap``: see
    :func:`parse_shards`.
    """
    replies: tuple[Any, Any, Any] = await asyncio.gather(
        execute(b"CLUSTER", b"INFO", encoding=None) if info is None else info,
        execute(b"CLUSTER", b"SHARDS", encoding=None),
        execute(b"CLUSTER", b"NODES", encoding=None),
        return_exceptions=True,
    )
    info, shards, nodes = replies
    if isinstance(info, NoPermissionError):  # a least-privilege user: epoch unknown (0)
        epoch = 0
    elif isinstance(info, BaseException):
        raise info
    else:
        epoch = parse_epoch(info)
    state_ok = b"cluster_state:fail" not in (info if isinstance(info, bytes) else b"")
    if isinstance(nodes, ReplyError):  # not allowed: config epochs unknown (0)
        epochs: dict[str, int] = {}
    elif isinstance(nodes, BaseException):
        raise nodes
    else:
        epochs = parse_config_epochs(nodes)
    try:
        if isinstance(shards, BaseException):
            raise shards
        view = parse_shards(
            shards, epoch=epoch, source=address, tls=tls, config_epochs=epochs, remap=remap
        )
    except ReplyError:  # before Redis 7: no CLUSTER SHARDS
        reply = await execute(b"CLUSTER", b"SLOTS", encoding=None)
        view = parse_slots(
            reply, epoch=epoch, source=address, config_epochs=epochs, remap=remap
        )
    return view if state_ok else replace(view, state_ok=False)
