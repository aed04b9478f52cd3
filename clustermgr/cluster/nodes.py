"""The node pools of a cluster and the slot map they serve: reload, apply, retire.

:class:`NodePools` reads the slot map from the nodes through a
:class:`~clustermgr.cluster.mapreader.MapReader` (one
:class:`~clustermgr.cluster.topology.SlotMap` per answering node, the best
one wins), diffs it against the previous one, creates node pools only for
nodes that came and retires those that went, and publishes the routing
tables (slot -> master pool, slot -> reader pool, the masters) to its
owner, each shard's reader picked by a
:class:`~clustermgr.cluster.readers.ReaderPicker`. It is the ``reload`` of
the :class:`~clustermgr.cluster.refresh.RefreshEngine`; it never sees the
owner itself, only the callables it is given.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from .._timeout import timeout as _timeout
from ..address import address_text
from ..connection import create_connection
from ..errors import RedisError
from ..events import Event, EventBus
from ..health import NodeHealth
from ..pool import ConnectionsPool
from ..remap import AddressRemap
from ..slots import SLOT_COUNT
from ..stats import NodeStats
from .mapreader import MapReader
from .observe import map_events
from .readers import ReaderPicker, pick_az_reader
from .refresh import RefreshOptions
from .state import ClusterState
from .topology import Address, Shard, SlotMap, diff_maps, merge_views

__all__ = ["NodePools", "Routes", "pick_az_reader"]

logger = logging.getLogger("clustermgr.cluster")

# How long a node pool that left the topology may drain its in-flight replies.
_RETIRE_GRACE = 5.0

# Least seconds between two probes (PING) of a node reported down.
_PROBE_EVERY = 1.0

# After a map moved slots while nodes refuse with CLUSTERDOWN: for this long at
# most, their CLUSTER INFO is asked every hold_interval / 5 (the other masters
# learn a promotion tens of ms after the promoted replica says ok).
_WATCH_FOR = 0.5

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
        self._read_from = read_from
        self._options = options
        self._conn_kwargs = dict(conn_kwargs)
        self._events = events
        self._create = create
        self._set_routes = set_routes
        self._set_readers = set_readers
        self._applied = applied
        self._spawn = spawn
        self._forget = forget
        self._closed = closed
        self._picker = ReaderPicker(read_from, client_az)
        self._zoning: asyncio.Task[Any] | None = None  # learn_zones() for the last map
        self._watching: asyncio.Task[Any] | None = None  # _watch_refusing() after a move
        self._readers: Routes | None = None
        self._health = NodeHealth()
        self._probing: dict[Address, asyncio.Task[Any]] = {}
        self._stating: dict[Address, asyncio.Task[Any]] = {}  # CLUSTER INFO of refusing nodes
        self._probed: dict[Address, float] = {}  # loop time of each node's last probe
        #: The slot map last applied.
        self.map: SlotMap | None = None
        #: The node pools in use, by address.
        self.pools: dict[Address, ConnectionsPool] = {}
        #: The nodes refusing with CLUSTERDOWN (told by the owner), until each says ok.
        self.state = ClusterState()
        self._maps = MapReader(
            startup=startup, options=options, tls=tls, conn_kwargs=conn_kwargs,
            current=lambda: self.map, down=lambda: self._health.down,
            node_pool=self.node_pool, pool_of=lambda a: self.pools.get(a), report=self.report,
            remap=remap, state=self.state.seen,
        )

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
        self.state.close()
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

    @property
    def reloads(self) -> int:
        """How many times the slot map was reloaded (reloads, and polls that read it)."""
        return self._maps.reads

    async def reload(self, reasons: frozenset[str]) -> None:
        """Read the slot map from the nodes and apply their views merged (see ``merge_views``).

        With ``az_affinity``, the zones of nodes new in the map are read before
        it returns (within ``node_timeout``), so a command waiting for this
        reload (the first of a lazy pool) reads from the replica of its zone."""
        maps = await self._maps.read(self._options.query_nodes)
        self._apply(merge_views(self.map, maps), reasons)
        if self._zoning is not None:
            await asyncio.shield(self._zoning)

    async def poll(self, reasons: frozenset[str]) -> None:
        """While commands are held: ask one node's ``CLUSTER INFO`` and read its view
        of the map only when that shows news (see :mod:`~clustermgr.cluster.mapreader`);
        meanwhile ask each node refusing with CLUSTERDOWN its ``CLUSTER INFO``."""
        # Closed pools still routed to (retired or closed under us) reopen below.
        reopen = any(p.closed for p in self.pools.values())
        # Each node refusing with CLUSTERDOWN is asked whether its state is ok now,
        # beside the poll: a silent one must not hold up the map's news.
        self._probe_states(self.state.refusing)
        view = await self._maps.poll()
        if view is not None:
            self._apply(merge_views(self.map, [view]), reasons)
        elif self.map is not None and (reopen or any(p.closed for p in self.pools.values())):
            self._apply(self.map, reasons)  # nothing new: the map stands, its closed pools reopen

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
        if old is not None:
            self._fence(old, new)
        for address in [a for a in self.pools if a not in wanted]:
            self._spawn(self._retire(self.pools.pop(address)))
        self.state.keep_only(new.addresses(replicas=True))
        if diff.moved_slots and self.state.refusing and (
            self._watching is None or self._watching.done()
        ):
            self._watching = self._spawn(self._watch_refusing())
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
        elif self._read_from == "az_affinity" and self._picker.zones_missing(
            new.addresses(replicas=True)
        ) and (self._zoning is None or self._zoning.done()):
            self._zoning = self._spawn(self.learn_zones())

    def _probe_states(self, addresses: Iterable[Address]) -> None:
        """Ask each of ``addresses`` its ``CLUSTER INFO`` in the background (at most
        one question in flight per node)."""
        for address in addresses:
            if address in self._stating:
                continue
            task = self._spawn(self._maps.probe_state(address))
            self._stating[address] = task
            task.add_done_callback(functools.partial(self._stated, address))

    def _stated(self, address: Address, task: asyncio.Task[Any]) -> None:
        if self._stating.get(address) is task:
            del self._stating[address]

    async def _watch_refusing(self) -> None:
        """Ask the nodes refusing with CLUSTERDOWN their ``CLUSTER INFO`` every
        ``hold_interval / 5`` until none refuses (at most ``_WATCH_FOR`` s): a
        promotion just applied reaches them tens of ms later, and the commands
        held there wake at their first ok (see :mod:`.state`)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + _WATCH_FOR
        while not self._closed() and loop.time() < until:
            refusing = self.state.refusing
            if not refusing:
                return
            self._probe_states(refusing)
            await asyncio.sleep(self._options.hold_interval / 5)

    def _fence(self, old: SlotMap, new: SlotMap) -> None:
        """Distrust the replies still due from each node that was a master in
        ``old`` and is none in ``new`` (demoted, failed or gone): a frozen old
        master must not acknowledge writes after its replica took over (they
        fail with ``may_have_executed=True`` instead of being acknowledged and
        lost), while a redirect from it (a graceful failover postponed the
        write) is still followed. See ``ConnectionsPool.fence``. Routes already
        point elsewhere; idle connections stay (reads of a node now a replica)."""
        masters = {m.address for m in new.masters}
        for node in old.masters:
            address = node.address
            pool = self.pools.get(address)
            if address in masters or pool is None:
                continue
            fenced = pool.fence()
            if fenced:
                logger.info(
                    "%s is no longer a master: %d connections fenced (replies pending or lent)",
                    address_text(address), fenced,
                )

    def _pick_reader(self, shard: Shard, current: ConnectionsPool | None = None) -> Address:
        """The node to read ``shard``'s slots from (``current``: its reader now)."""
        kept = current.address if current is not None and not current.closed else None
        return self._picker.pick(shard, kept)

    async def _measure_latency(self) -> None:
        await self._picker.measure(self.pools, self._options.node_timeout)
        self._repick_readers()

    async def learn_zones(self) -> None:
        """Read the ``availability_zone`` (``INFO server``, Valkey 8.1+) of every node
        of the map not known yet, then pick readers: one INFO per node, at once,
        each within ``node_timeout`` (on the node's pool, or a connection of its
        own for a replica not read from yet); see
        :meth:`~clustermgr.cluster.readers.ReaderPicker.learn_zones`."""
        current = self.map
        if current is None:
            return
        await self._picker.learn_zones(current.addresses(replicas=True), self._maps.on_node)
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

