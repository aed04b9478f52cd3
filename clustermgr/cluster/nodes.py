"""The node pools of a cluster and the slot map they serve: reload, apply, retire.

:class:`NodePools` reads the slot map from the nodes (one
:class:`~clustermgr.cluster.topology.SlotMap` per answering node, the best
one wins), diffs it against the previous one, creates node pools only for
nodes that came and retires those that went, and publishes the routing
tables (slot -> master pool, slot -> reader pool, the masters) to its
owner. It is the ``reload`` of the :class:`~clustermgr.cluster.refresh.RefreshEngine`;
it never sees the owner itself, only the callables it is given.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .._timeout import timeout as _timeout
from ..address import address_text
from ..connection import create_connection
from ..credentials import CredentialProviderError
from ..errors import AuthError, ConnectError, RedisError, ReplyError
from ..events import Event, EventBus
from ..health import NodeHealth, describe_failure
from ..pool import ConnectionsPool
from ..remap import AddressRemap, AddressRemapError
from ..slots import SLOT_COUNT
from ..stats import NodeStats
from .observe import map_events
from .probe import ClusterInfo, MapProbe
from .refresh import RefreshOptions
from .topology import Address, Shard, SlotMap, diff_maps, merge_views, read_slot_map

__all__ = ["NodePools", "Routes", "pick_az_reader"]

logger = logging.getLogger("clustermgr.cluster")

# How long a node pool that left the topology may drain its in-flight replies.
_RETIRE_GRACE = 5.0

# Least seconds between two probes (PING) of a node reported down.
_PROBE_EVERY = 1.0

_T = TypeVar("_T")
# A reload failing with these on every node it asked fails with the first of
# them (typed): a wrong password or a broken provider is not mended by a retry.
_NEVER_RETRIED = (AuthError, CredentialProviderError)


async def _nothing() -> None:
    return None


Routes = list[ConnectionsPool | None]
"""One entry per slot: the node pool serving it, or None."""


class NodePools:
    """Keeps one node pool per node of the current slot map (see module doc).

    ``create(address)`` makes a node pool (the owner's class, options and event
    bus); ``set_routes(routes, masters)`` and ``set_readers(readers)`` hand the
    owner new routing tables (``readers`` is None when reads go to masters,
    and is replaced alone after latency measurements); ``applied()`` runs
    after each new map; ``spawn(coro)`` runs a task in the owner's task set;
    ``forget(pool)`` drops what the owner keeps for a retired pool;
    ``closed()`` says whether the owner is closing; ``remap`` turns the
    addresses nodes announce into the ones to connect to (a failing remap
    fails the reload with its :class:`~clustermgr.remap.AddressRemapError`).
    """

    def __init__(
        self,
        *,
        startup: Sequence[Address],
        read_from: str,
        options: RefreshOptions,
        tls: bool,
        conn_kwargs: Mapping[str, Any],
        events: EventBus,
        create: Callable[[Address], ConnectionsPool],
        set_routes: Callable[[Routes, list[ConnectionsPool]], None],
        set_readers: Callable[[Routes | None], None],
        applied: Callable[[], None],
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
        forget: Callable[[ConnectionsPool], None],
        closed: Callable[[], bool],
        remap: AddressRemap | None = None,
        client_az: str | None = None,
    ) -> None:
        self._startup = list(startup)
        self._read_from = read_from
        self._options = options
        self._tls = tls
        self._conn_kwargs = dict(conn_kwargs)
        self._events = events
        self._create = create
        self._set_routes = set_routes
        self._set_readers = set_readers
        self._applied = applied
        self._spawn = spawn
        self._forget = forget
        self._closed = closed
        self._remap = remap
        self._client_az = client_az
        self._zones: dict[Address, str] = {}  # availability zone of each node, once read
        self._zoning: asyncio.Task[Any] | None = None  # learn_zones() for the last map
        self._readers: Routes | None = None
        self._latency: dict[Address, float] = {}
        self._health = NodeHealth()
        self._probing: dict[Address, asyncio.Task[Any]] = {}
        self._probed: dict[Address, float] = {}  # loop time of each node's last probe
        self._info = MapProbe()  # CLUSTER INFO seen per node: is a poll worth a full read?
        self._polled: Address | None = None  # the node polls ask first, while it answers
        #: The slot map last applied.
        self.map: SlotMap | None = None
        #: The node pools in use, by address.
        self.pools: dict[Address, ConnectionsPool] = {}
        #: How many times the slot map was reloaded.
        self.reloads = 0

    # -- node pools -------------------------------------------------------

    def node_pool(self, address: Address) -> ConnectionsPool:
        """The pool of the node at ``address``, created (and filled) if needed."""
        pool = self.pools.get(address)
        if pool is None or pool.closed:
            pool = self._create(address)
            self.pools[address] = pool
            self._spawn(self._fill(pool))
        return pool

    async def fill_all(self) -> dict[ConnectionsPool, BaseException]:
        """Open every node pool's minimum of connections; the failures (also logged)."""
        pools = list(self.pools.values())
        failures = await asyncio.gather(*(self._fill(p) for p in pools))
        return {pool: exc for pool, exc in zip(pools, failures, strict=True) if exc is not None}

    @staticmethod
    async def _fill(pool: ConnectionsPool) -> BaseException | None:
        try:
            await pool.fill()
        except (RedisError, OSError) as exc:
            logger.debug("could not open connections to %s: %s", pool, exc)
            return exc
        return None

    async def _retire(self, pool: ConnectionsPool) -> None:
        self._forget(pool)
        # Let replies already on their way arrive; then close for good (also
        # when close() cancels the wait: the retiring pool's sockets go too).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _RETIRE_GRACE
        try:
            while pool.in_flight and loop.time() < deadline and not self._closed():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            pool.close()
            await pool.wait_closed()

    def close(self) -> None:
        """Close every node pool (without waiting)."""
        for pool in self.pools.values():
            pool.close()

    async def wait_closed(self) -> None:
        """Close every node pool and wait until they are closed."""
        pools = list(self.pools.values())
        self.pools.clear()
        for pool in pools:
            pool.close()
        await asyncio.gather(*(p.wait_closed() for p in pools), return_exceptions=True)

    def node_stats(self) -> list[NodeStats]:
        """Per-node statistics, by address, with each node's role."""
        masters = {m.address for m in self.map.masters} if self.map is not None else set()
        return [
            pool.node_stats(role="master" if address in masters else "replica")
            for address, pool in sorted(self.pools.items())
        ]

    # -- node health ------------------------------------------------------

    def report(self, address: Address, up: bool, reason: str) -> None:
        """Record that the node at ``address`` answered (``up``) or failed."""
        self._node_event(self._health.report(address, up, reason))

    def _probe(self, addresses: Iterable[Address]) -> None:
        """PING each node (at most one probe per node in flight, one per second)."""
        now = asyncio.get_running_loop().time()
        for address in addresses:
            if address in self._probing or now - self._probed.get(address, -_PROBE_EVERY) < (
                _PROBE_EVERY
            ):
                continue
            self._probed[address] = now
            task = self._spawn(self._ping(address))
            self._probing[address] = task
            task.add_done_callback(functools.partial(self._probe_done, address))

    def _probe_done(self, address: Address, task: asyncio.Task[Any]) -> None:
        if self._probing.get(address) is task:
            del self._probing[address]

    async def _ping(self, address: Address) -> None:
        try:
            async with _timeout(self._options.node_timeout):
                conn = await create_connection(address, **self._conn_kwargs)
                try:
                    await conn.execute(b"PING")
                finally:
                    conn.close()
                    await conn.wait_closed()
        except (RedisError, OSError, asyncio.TimeoutError):
            return  # still down: nothing new to say
        self.report(address, True, "answered PING")

    def _node_event(self, event: Event | None) -> None:
        if event is None:
            return
        logger.info("%s", event.describe())
        if self._events.active:
            self._events.emit(event)

    # -- the slot map -----------------------------------------------------

    def _candidates(self, batch: int) -> list[list[Address]]:
        """Nodes to ask, in batches: the replicas of masters reported down (the
        one promoted knows first), known masters (each group shuffled), then
        the startup nodes; nodes reported down come last, in batches of their
        own, so a dead or frozen node does not slow down the reloads."""
        down = self._health.down
        heirs: list[Address] = []
        known: list[Address] = []
        if self.map is not None:
            known = [m.address for m in self.map.masters]
            heirs = [r.address for shard in self.map.distinct if shard.master.address in down
                     for r in shard.replicas]
        random.shuffle(heirs)
        random.shuffle(known)
        seen: dict[Address, None] = {}
        for address in (*heirs, *known, *self._startup):
            seen.setdefault(address, None)
        batches: list[list[Address]] = []
        for group in ([a for a in seen if a not in down], [a for a in seen if a in down]):
            batches.extend(group[i : i + batch] for i in range(0, len(group), batch))
        return batches

    @property
    def state_ok(self) -> bool:
        """False while the last map's views said ``cluster_state:fail``."""
        return self.map is None or self.map.state_ok

    async def reload(self, reasons: frozenset[str]) -> None:
        """Read the slot map from the nodes and apply their views merged (see ``merge_views``).

        With ``az_affinity``, the zones of nodes new in the map are read before
        it returns (within ``node_timeout``), so a command waiting for this
        reload (the first of a lazy pool) reads from the replica of its zone."""
        await self._read(reasons, self._options.query_nodes)
        if self._zoning is not None:
            await asyncio.shield(self._zoning)

    async def poll(self, reasons: frozenset[str]) -> None:
        """While commands are held: ask one node's ``CLUSTER INFO`` and read its view
        of the map only when that shows news (see :mod:`~clustermgr.cluster.probe`);
        the next node only when it fails. Where ``CLUSTER INFO`` is refused (ACL),
        every poll reads the view."""
        errors: list[str] = []
        # Closed pools still routed to (retired or closed under us) reopen below.
        reopen = any(p.closed for p in self.pools.values())
        for address in self._poll_order():
            try:
                view = await self._on_node(
                    address, functools.partial(self._poll_node, address), pooled=True
                )
            except AddressRemapError:
                raise  # the user's callable, not the node, failed
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                problem = describe_failure(exc)
                errors.append(f"{address_text(address)}: {problem}")
                self.report(address, False, f"slot map query failed: {problem}")
                continue
            self.report(address, True, "answered CLUSTER INFO")
            self._polled = address
            if view is None:  # nothing new: the map stands (its closed pools reopened)
                if self.map is not None and (
                    reopen or any(p.closed for p in self.pools.values())
                ):
                    self._apply(self.map, reasons)
                return
            self.reloads += 1
            if view.covered:
                self._apply(merge_views(self.map, [view]), reasons)
                return
        raise ConnectError("no cluster node answered a poll (" + "; ".join(errors[-3:]) + ")")

    def _poll_order(self) -> list[Address]:
        """The node that answered the last poll first (its INFO is compared with its
        own last read), then the others as reloads ask them."""
        order = [a for batch in self._candidates(1) for a in batch]
        polled = self._polled
        if polled is not None and polled in order and polled not in self._health.down:
            order.remove(polled)
            order.insert(0, polled)
        return order

    async def _poll_node(self, address: Address, execute: Any) -> SlotMap | None:
        """The view of ``address`` if its answers call for a read, else None.

        ``CLUSTER INFO`` is compared by the probe (a node the map does not name,
        a seed, is read at once); a replica of a master reported
        down is also asked ``ROLE``: once it says master (a promotion that moved
        no epoch, ``CLUSTER FAILOVER TAKEOVER``), its view is read."""
        probe = self._info
        current = self.map
        member = current is not None and any(n.address == address for n in current.nodes)
        if probe.refused or not member:  # a seed may now name another cluster: read it
            return await self._read_view(address, execute)
        loop = asyncio.get_running_loop()
        ask_role = not probe.role_refused and self._is_heir(address)
        replies = await asyncio.gather(
            execute(b"CLUSTER", b"INFO", encoding=None),
            execute(b"ROLE", encoding=None) if ask_role else _nothing(),
            return_exceptions=True,
        )
        reply, role = replies
        sent: asyncio.Future[Any] = loop.create_future()
        if isinstance(reply, ReplyError):  # not allowed (ACL): read the view every time
            probe.refused = True
            logger.info("CLUSTER INFO refused by %s (%s): each poll reads the slot map",
                        address_text(address), reply)
            sent.set_exception(reply)
            return await read_slot_map(
                execute, address, tls=self._tls, info=sent, remap=self._remap
            )
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(role, ReplyError):
            probe.role_refused = True
        info = ClusterInfo.parse(reply)
        promoted = isinstance(role, list) and bool(role) and role[0] in (b"master", "master")
        epoch = current.epoch if current is not None else None
        if not probe.worth_reading(address, info, loop.time(), epoch) and not promoted:
            return None
        sent.set_result(reply)
        view = await read_slot_map(
            execute, address, tls=self._tls, info=sent, remap=self._remap
        )
        probe.note_read(address, info)
        return view

    def _is_heir(self, address: Address) -> bool:
        """A replica, in the current map, of a master reported down."""
        current = self.map
        if current is None:
            return False
        down = self._health.down
        return any(
            shard.master.address in down and any(r.address == address for r in shard.replicas)
            for shard in current.distinct
        )

    async def _read(self, reasons: frozenset[str], batch: int) -> None:
        self.reloads += 1
        maps: list[SlotMap] = []
        errors: list[str] = []
        refused: list[BaseException] = []  # failures no retry can mend (credentials)
        for chunk in self._candidates(batch):
            results = await asyncio.gather(
                *(self._query(a) for a in chunk), return_exceptions=True
            )
            for address, result in zip(chunk, results, strict=True):
                if isinstance(result, AddressRemapError):
                    raise result  # the user's callable, not the node, failed
                if isinstance(result, SlotMap):
                    self.report(address, True, "answered CLUSTER INFO")
                    if result.covered:
                        maps.append(result)
                elif isinstance(result, (Exception, asyncio.TimeoutError)):
                    if isinstance(result, _NEVER_RETRIED):
                        refused.append(result)
                    problem = describe_failure(result)
                    errors.append(f"{address_text(address)}: {problem}")
                    self.report(address, False, f"slot map query failed: {problem}")
                else:  # pragma: no cover - CancelledError and friends
                    raise result
            if maps:
                break
        if not maps:
            if refused and len(refused) == len(errors):  # every node refused the credentials
                raise refused[0]
            raise ConnectError(
                "no cluster node returned a slot map (" + "; ".join(errors[-3:]) + ")"
            )
        self._apply(merge_views(self.map, maps), reasons)

    async def _query(self, address: Address) -> SlotMap:
        return await self._on_node(address, functools.partial(self._read_view, address))

    async def _on_node(
        self, address: Address, ask: Callable[[Any], Awaitable[_T]], *, pooled: bool = False
    ) -> _T:
        """``ask(execute)`` on the node's pool, or on a connection of its own if it
        has none, within ``node_timeout``. ``pooled``: a node not reported down
        gets a pool (polls come every ``hold_interval``; a replica's pool is
        retired by the next map that does not route to it)."""
        async with _timeout(self._options.node_timeout):
            if pooled and address not in self._health.down:
                self.node_pool(address)
            pool = self.pools.get(address)
            if pool is not None and not pool.closed:
                return await ask(pool.execute)
            conn = await create_connection(address, **self._conn_kwargs)
            try:
                return await ask(conn.execute)
            finally:
                conn.close()
                await conn.wait_closed()

    async def _read_view(self, address: Address, execute: Any) -> SlotMap:
        """The node's view; the CLUSTER INFO read with it is what later polls compare."""
        info = asyncio.ensure_future(execute(b"CLUSTER", b"INFO", encoding=None))
        view = await read_slot_map(
            execute, address, tls=self._tls, info=info, remap=self._remap
        )
        if info.done() and not info.cancelled() and info.exception() is None:
            self._info.note_read(address, ClusterInfo.parse(info.result()))
        return view

    def _apply(self, new: SlotMap, reasons: Iterable[str]) -> None:
        old = self.map
        replicas = self._read_from != "master"
        diff = diff_maps(old, new, replicas=replicas)
        wanted = new.addresses(replicas=replicas)
        routes: Routes = [None] * SLOT_COUNT
        readers: Routes | None = [None] * SLOT_COUNT if replicas else None
        per_shard: dict[int, tuple[ConnectionsPool, ConnectionsPool]] = {}  # by id(shard)
        previous = self._readers
        starts = new.starts
        for start, end in zip(starts, [*starts[1:], SLOT_COUNT], strict=True):
            shard = new.shards[start]
            if shard is None:
                continue
            pair = per_shard.get(id(shard))
            if pair is None:
                master = self.node_pool(shard.master.address)
                current = previous[start] if previous is not None else None
                reader = (
                    self.node_pool(self._pick_reader(shard, current)) if replicas else master
                )
                pair = per_shard[id(shard)] = (master, reader)
            routes[start:end] = [pair[0]] * (end - start)
            if readers is not None:
                readers[start:end] = [pair[1]] * (end - start)
        self._set_routes(routes, [self.node_pool(m.address) for m in new.masters])
        self._readers = readers
        self._set_readers(readers)
        self.map = new
        for address in [a for a in self.pools if a not in wanted]:
            self._spawn(self._retire(self.pools.pop(address)))
        if diff.changed:
            logger.info(
                "slot map from %s (epoch %d, %s): %d masters, %d slots covered, "
                "%d slots moved, nodes +%s -%s",
                address_text(new.source) if new.source else "?", new.epoch,
                ",".join(sorted(reasons)), len(new.masters), new.covered, diff.moved_slots,
                sorted(address_text(a) for a in diff.added),
                sorted(address_text(a) for a in diff.removed),
            )
        if self._events.active:
            for event in map_events(old, new, reasons):
                self._events.emit(event)
        for event in self._health.from_nodes(new.nodes):
            self._node_event(event)
        self._probe(self._health.suspects(new.nodes))
        self._applied()
        if self._read_from == "nearest":
            self._spawn(self._measure_latency())
        elif self._read_from == "az_affinity" and any(
            a not in self._zones for a in new.addresses(replicas=True)
        ) and (self._zoning is None or self._zoning.done()):
            self._zoning = self._spawn(self.learn_zones())

    def _pick_reader(self, shard: Shard, current: ConnectionsPool | None = None) -> Address:
        """The node to read ``shard``'s slots from; a healthy replica read from
        (``current``) stays the reader, so a reload that changes nothing moves no reads."""
        if self._read_from == "az_affinity":
            return pick_az_reader(shard, self._client_az or "", self._zones)
        replicas = [r.address for r in shard.healthy_replicas]
        if self._read_from == "nearest":
            choices = [shard.master.address, *replicas]
            return min(choices, key=lambda a: self._latency.get(a, float("inf")))
        kept = current.address if current is not None and not current.closed else None
        if isinstance(kept, tuple) and kept in replicas:
            return kept
        if replicas:
            return random.choice(replicas)
        return shard.master.address

    async def _measure_latency(self) -> None:
        loop = asyncio.get_running_loop()

        async def ping(address: Address, pool: ConnectionsPool) -> None:
            start = loop.time()
            try:
                async with _timeout(self._options.node_timeout):
                    await pool.execute(b"PING")
            except (RedisError, OSError, asyncio.TimeoutError):
                self._latency[address] = float("inf")
                return
            rtt = loop.time() - start
            old = self._latency.get(address)
            self._latency[address] = rtt if old is None or old == float("inf") else (
                0.7 * old + 0.3 * rtt
            )

        await asyncio.gather(*(ping(a, p) for a, p in list(self.pools.items())))
        self._repick_readers()

    async def learn_zones(self) -> None:
        """Read the ``availability_zone`` (``INFO server``, Valkey 8.1+) of every node
        of the map not known yet, then pick readers: one INFO per node, at once,
        each within ``node_timeout`` (on the node's pool, or a connection of its
        own for a replica not read from yet).

        A node that does not say (older servers, INFO denied, no answer in
        ``node_timeout``) has no zone: it is never "in the client's zone".
        """
        current = self.map
        if current is None:
            return

        def ask(execute: Any) -> Awaitable[Any]:
            return execute(b"INFO", b"server", encoding=None)  # type: ignore[no-any-return]

        async def zone(address: Address) -> None:
            try:
                info = await self._on_node(address, ask)
            except (RedisError, OSError, asyncio.TimeoutError):
                return
            self._zones[address] = _info_field(info, "availability_zone")

        unknown = [a for a in current.addresses(replicas=True) if a not in self._zones]
        await asyncio.gather(*(zone(a) for a in unknown))
        self._repick_readers()

    def _repick_readers(self) -> None:
        current = self.map
        if current is None or self._closed() or self._readers is None:
            return
        readers = list(self._readers)
        chosen: dict[int, ConnectionsPool] = {}  # by id(shard)
        for slot, shard in enumerate(current.shards):
            if shard is not None:
                if id(shard) not in chosen:
                    chosen[id(shard)] = self.node_pool(self._pick_reader(shard))
                readers[slot] = chosen[id(shard)]
        self._readers = readers
        self._set_readers(readers)


def pick_az_reader(shard: Shard, client_az: str, zones: Mapping[Address, str]) -> Address:
    """The reader for ``read_from="az_affinity"``: a healthy replica in ``client_az``,
    else any healthy replica, else the master (``zones``: address -> zone)."""
    replicas = [r.address for r in shard.healthy_replicas]
    local = [a for a in replicas if zones.get(a) == client_az]
    if local:
        return random.choice(local)
    if replicas:
        return random.choice(replicas)
    return shard.master.address


def _info_field(info: Any, name: str) -> str:
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    prefix = name + ":"
    for line in text.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return ""
