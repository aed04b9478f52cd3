"""ClusterPool: an AbcPool that routes each command by key slot to a per-node pool.

The data path, top-down:

* :meth:`ClusterPool.execute` classifies the command once (its
  :class:`~clustermgr.commands.CommandInfo` and slot), looks the node's
  :class:`~clustermgr.pool.ConnectionsPool` up in a 16384-entry list and
  calls its ``execute`` through the routing core's hot path
  (:mod:`clustermgr.routing`) -- synchronously, no task per command. The
  caller gets the node connection's own future; its error hook catches
  redirects and transient failures at reply time.
* What each error means is :attr:`ClusterPool.ERROR_ACTIONS` (MOVED, ASK,
  TRYAGAIN, CLUSTERDOWN, LOADING, READONLY, a lost connection); the one
  retry path of :class:`~clustermgr.routing.Router` carries it out, bounded
  by ``max_redirects`` and ``retry_timeout``. This module says only where a
  command goes (:meth:`ClusterPool._route`); how a held command waits for
  the slot map is :mod:`.waits`, where a redirect leads :mod:`.redirects`.
* The slot map is reloaded by one :class:`~clustermgr.cluster.refresh.RefreshEngine`
  calling :class:`~clustermgr.cluster.nodes.NodePools`: applying a map diffs
  it against the previous one, creates / retires node pools only for nodes
  that came or went, and hands this pool its new routing tables.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from ..abc import AbcConnection
from ..bounds import DEFAULT, Default
from ..commands import CommandInfo, CommandTable
from ..connection import RedisConnection
from ..credentials import CredentialProvider, auth_all
from ..errors import (
    AskError,
    AskTargetUnreachableError,
    ClusterDownError,
    ClusterRetryError,
    ConnectError,
    ConnectionClosedError,
    CrossSlotError,
    LoadingError,
    MovedError,
    PoolClosedError,
    ReadOnlyError,
    RedirectError,
    RouteError,
    TryAgainError,
)
from ..options import check_options
from ..pool import ConnectionsPool
from ..pubsub import is_pubsub_command
from ..remap import AddressRemap
from ..replybound import DEFAULT_MAX_REPLY_SIZE
from ..routing import Action, Budget, Classified, Router
from ..routing.batch import RoutedBatch
from ..slots import SLOT_COUNT, key_slot
from ..stats import NodeStats
from ..subscriptions import SubscriptionSet, SubscriptionViews
from ..tasks import failed
from .commandtable import read_command_table
from .multikey import pubsub_merge
from .nodefactory import NodePoolFactory
from .nodes import NodePools, Routes
from .pubsub import ClusterPubSub
from .redirects import Redirects
from .refresh import RefreshEngine, RefreshOptions
from .settings import READ_FROM, ClusterSettings, cluster_settings
from .spread import fan_out, scan_one_master, split_across_slots
from .topology import Address, SlotMap
from .waits import MapWaits

__all__ = ["READ_FROM", "ClusterPool", "create_cluster_pool"]

_FANOUT = ("all_shards", "all_nodes")


class ClusterPool(SubscriptionViews, Router):
    """Connections to every node of a Redis Cluster (see :func:`create_cluster_pool`)."""

    KIND = "cluster"
    _retry_timeout: float
    ERROR_ACTIONS = {
        MovedError: Action.MOVED,
        AskError: Action.ASK,
        TryAgainError: Action.BACKOFF,
        LoadingError: Action.BACKOFF,
        ClusterDownError: Action.REFRESH_LATER,
        ReadOnlyError: Action.REFRESH,
        ConnectionClosedError: Action.REFRESH_LATER,
        ConnectError: Action.REFRESH_LATER,
        PoolClosedError: Action.REFRESH_LATER,
    }

    def __init__(self, settings: ClusterSettings) -> None:
        """Use :func:`create_cluster_pool`; ``settings`` come from :func:`cluster_settings`."""
        super().__init__(
            retry_timeout=settings.retry_timeout, max_failures=None,
            max_redirects=settings.max_redirects,
        )
        self._encoding = settings.encoding
        read_from = settings.read_from
        self._options = settings.refresh
        self._pool_kwargs = settings.pool_kwargs
        self._table = CommandTable.builtin()
        self._table_wanted = False
        self._routes: Routes = [None] * SLOT_COUNT
        self._readers: Routes | None = None
        self._masters: list[ConnectionsPool] = []
        create = NodePoolFactory(
            settings.pool_cls, self._pool_kwargs, read_from=read_from,
            hold_interval=self._options.hold_interval, adopt=self._adopt,
            overdue=lambda address: self._waits.overdue(address),
        )
        self._nodes = NodePools(
            startup=settings.startup, read_from=read_from, options=self._options, tls=settings.tls,
            conn_kwargs=settings.conn_kwargs,
            events=self.events, create=create, set_routes=self._set_routes,
            set_readers=self._set_readers, applied=self._map_applied,
            spawn=self._tasks.spawn, forget=self._forget, closed=lambda: self._closed,
            remap=settings.remap, client_az=settings.client_az,
        )
        self._refresh = RefreshEngine(self._nodes.reload, self._options, poll=self._nodes.poll)
        self._waits = MapWaits(
            self._refresh, route=self._route, report=self._nodes.report,
            state=self._nodes.state, current_map=lambda: self._nodes.map,
            closed=lambda: self._closed,
            backoff=self._backoff, actions=self._actions, retry_timeout=self._retry_timeout,
            node_timeout=self._options.node_timeout,
        )
        self._redirects = Redirects(
            remap=settings.remap, routes=lambda: self._routes, node_pool=self._nodes.node_pool,
            pools=lambda: self._nodes.pools, events=self.events, trigger=self._refresh.trigger,
        )
        self._pubsub = ClusterPubSub(
            spawn=self._tasks.spawn, slot_owner=self._route_slot, masters=lambda: self._masters,
            refresh=self._waits.refresh_now, trigger=self._refresh.trigger,
            poll=self._waits.poll_map,
            retry_timeout=self._retry_timeout, events=self.events,
        )

    # -- startup ----------------------------------------------------------

    async def _initialize(self) -> None:
        await self._nodes.reload(frozenset({"startup"}))
        failures = await self._nodes.fill_all()
        masters = self._masters
        if masters and all(pool in failures for pool in masters):
            raise failures[masters[0]]  # no master opened its minsize (maxclients, auth, ...)
        await self._load_command_table()
        self._refresh.start()

    def _start_lazily(self) -> None:
        """Connect nothing now: the first command's missing route reloads the map."""
        self._table_wanted = True
        self._refresh.start()

    async def _load_command_table(self) -> None:
        table = await read_command_table(list(self._masters), self._options.node_timeout * 5)
        if table is not None:
            self._table = table

    @property
    def commands(self) -> CommandTable:
        """The command table used for routing (the server's, once fetched)."""
        return self._table

    # -- nodes ------------------------------------------------------------

    async def auth(self, password: str, username: str | None = None) -> bool:
        """``AUTH`` every connection of every node pool (ACL ``username`` optional);
        node pools opened later use the credentials too.

        If a node refuses, its error (:class:`~clustermgr.errors.AuthError`) is
        raised once every node answered; the nodes that accepted keep the new
        credentials, node pools opened later the old ones.
        """
        await auth_all(list(self._nodes.pools.values()), password, username)
        self._pool_kwargs.update(username=username, password=password)
        return True

    async def reauthenticate(self) -> bool:
        """Re-authenticate every node pool with the credential provider's answer.

        See :meth:`ConnectionsPool.reauthenticate`; the first refusal is raised.
        """
        await asyncio.gather(*(p.reauthenticate() for p in list(self._nodes.pools.values())))
        return True

    def _set_routes(self, routes: Routes, masters: list[ConnectionsPool]) -> None:
        self._routes = routes
        self._masters = masters

    def _set_readers(self, readers: Routes | None) -> None:
        self._readers = readers

    # -- routing ----------------------------------------------------------

    def _any_master(self) -> ConnectionsPool | None:
        masters = self._masters
        return random.choice(masters) if masters else None

    def _lookup(self, command: bytes | str) -> CommandInfo:
        return self._table.lookup(command)

    def _slot_of(self, info: CommandInfo, args: tuple[Any, ...]) -> int | None:
        return info.slot_of(args)

    def _route_slot(self, slot: int) -> ConnectionsPool | None:
        return self._routes[slot]

    def _route(self, c: Classified) -> ConnectionsPool | None:
        slot = c.slot
        return self._any_master() if slot is None else self._routes[slot]

    async def _wait_route(self, c: Classified, budget: Budget, why: str) -> None:
        await self._waits.for_route(c, budget, why)

    async def _wait_retry(
        self, c: Classified, budget: Budget, error: BaseException, action: Action
    ) -> None:
        await self._waits.for_retry(c, budget, error, action)

    def _redirect(self, c: Classified, error: BaseException, ask: bool) -> ConnectionsPool:
        assert isinstance(error, RedirectError)
        return self._redirects.follow(c.name, error, ask)

    def _observe(self, c: Classified, pool: ConnectionsPool | None, error: BaseException) -> None:
        self._waits.failed(pool, error)

    def _request_refresh(self, reason: str) -> None:
        self._waits.request(reason)

    def _exhausted(self, c: Classified, budget: Budget, why: str,
                   last: BaseException | None) -> BaseException:
        detail = f"{type(last).__name__}: {last}" if last is not None else "no route"
        ask = budget.held_ask
        if isinstance(ask, AskError):
            host, port = ask.address
            return AskTargetUnreachableError(
                f"{c.name} gave up after {why}: slot {ask.slot} is migrating to "
                f"{host}:{port} (ASK), which did not answer; last error: {detail}", last,
                slot=ask.slot, address=ask.address, may_have_executed=budget.unknown,
            )
        return ClusterRetryError(
            f"{c.name} gave up after {why}; last error: {detail}", last,
            may_have_executed=budget.unknown,
        )

    def _closed_error(self) -> PoolClosedError:
        return PoolClosedError("cluster pool was closed")

    def slot_owner(self, slot: int) -> tuple[str, int] | None:
        """``(host, port)`` of the master this pool sends ``slot`` to, or None."""
        pool = self._routes[slot]
        address = pool.address if pool is not None else None
        return address if isinstance(address, tuple) else None

    @property
    def slot_map(self) -> SlotMap | None:
        """The slot map last applied."""
        return self._nodes.map

    @property
    def node_pools(self) -> Mapping[Address, ConnectionsPool]:
        """The per-node pools in use, by address."""
        return dict(self._nodes.pools)

    def redirect_pool(self, address: Address) -> ConnectionsPool | None:
        """The node pool in use for an address a redirect announced (remapped as
        the pool's own redirects are; :class:`~clustermgr.remap.AddressRemapError`)."""
        return self._redirects.known(address)

    # -- AbcPool: commands ------------------------------------------------

    def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Route ``command`` by its key's slot; returns a future at once.

        Raises synchronously for bad input (:class:`CrossSlotError` for an
        atomic multi-key command across slots, TypeError, RouteError). The
        future fails with a typed :class:`~clustermgr.errors.RedisError`.
        MGET/MSET/DEL/UNLINK/EXISTS/TOUCH across slots are split per slot and
        merged (not atomic). Once closed: a future failed with
        :class:`PoolClosedError`.
        """
        if self._closed:
            return failed(PoolClosedError("cluster pool is closed"))
        info = self._table.lookup(command)  # the one lookup: classified here
        try:
            slot = info.slot_of(args)
        except CrossSlotError:
            layout = info.split_layout()
            if layout is None:
                raise
            return self._tasks.spawn(split_across_slots(
                self._send_to_slot, info, command, args, kwargs, layout))
        if info.subcommands and args:
            info = info.subcommand(args[0]) or info
        if info.pubsub and is_pubsub_command(command):
            return self.execute_pubsub(command, *args)
        if slot is None:
            if info.name == "scan":  # one master per call, the cursor says which
                return self._tasks.spawn(
                    scan_one_master(self._send_to_slot, self._nodes.map, info, args, kwargs))
            if info.request_policy in _FANOUT:
                c = Classified(self, command, args, kwargs, info if info.name else None, None)
                return self._tasks.spawn(self._fanout(c))
            if info.name == "publish" and args:  # the same channel, the same node
                slot = key_slot(args[0])
                return self._send_fast(self._routes[slot], info, command, args, kwargs, slot)
            merge = pubsub_merge(args[0]) if args and info.name.startswith("pubsub") else None
            if merge is not None:
                c = Classified(self, command, args, kwargs, info, None)
                return self._tasks.spawn(self._fanout(c, merge))
            return self._send_fast(self._any_master(), info, command, args, kwargs, None)
        readers = self._readers
        if readers is not None and info.readonly:
            return self._send_fast(readers[slot], info, command, args, kwargs, slot)
        return self._send_fast(self._routes[slot], info, command, args, kwargs, slot)

    def execute_batch(
        self, commands: Sequence[Sequence[Any]], **kwargs: Any
    ) -> Awaitable[list[Any]]:
        """Run many commands, one write per node; replies in the caller's order.

        Commands are grouped by the master owning their slot and each group
        goes out as one batch on one connection. Replies that are redirects
        or transient errors are resent, in their original order, before the
        later commands of their slot; other error replies are returned in
        place as exception instances, as with MULTI/EXEC results, each with
        ``may_have_executed``. Bad input anywhere in the batch (not a
        sequence, an argument that cannot be sent, a connection-state
        command, an unknown ``encoding``) raises before anything is sent.
        Keyless, cross-slot, blocking and pub/sub commands run through
        :meth:`execute`, each between the commands around it. The exact
        order guarantee and its limit: :mod:`clustermgr.routing.batch`. Not
        atomic; replica reads are not used.
        """
        if self._closed:
            raise PoolClosedError("cluster pool is closed")
        batch = RoutedBatch(self, commands, kwargs)
        return self._tasks.spawn(batch.run())

    def _send_to_slot(
        self, command: bytes | str, args: tuple[Any, ...], kwargs: dict[str, Any],
        info: CommandInfo | None, slot: int,
    ) -> Awaitable[Any]:
        """One part of a spread command (:mod:`.spread`), routed by ``slot``."""
        return self._send(Classified(self, command, args, kwargs, info, slot), self._routes[slot])

    async def _fanout(
        self, c: Classified, merge: Callable[[list[Any]], Any] | None = None
    ) -> Any:
        """Every master, each routed by one slot of its shard: retried like execute.

        The replies are combined by ``merge``, else per the command's tips."""
        if not self._masters:
            await self._refresh.refresh("no masters known", self._retry_timeout)
        return await fan_out(self._send_to_slot, self._nodes.map, c.command, c.args,
                             c.kwargs, c.info, c.name, merge)

    # -- AbcPool: exclusive connections -----------------------------------

    def get_connection(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection | None:
        """A shared connection of the node owning the key in ``args``, or None."""
        if self._closed:
            return None
        info = self._table.lookup(command) if command is not None else None
        slot = _exclusive_slot(info, args, len(self._masters))
        pool = self._any_master() if slot is None else self._routes[slot]
        return pool.get_connection() if pool is not None else None

    async def acquire(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection:
        """An exclusive connection to the master owning the key in ``args``.

        For MULTI/EXEC, WATCH and blocking commands; give it back with
        :meth:`release`. Without a key: the master of a one-master cluster,
        else :class:`RouteError`.
        """
        if self._closed:
            raise PoolClosedError("cluster pool is closed")
        info = self._table.lookup(command) if command is not None else None
        slot = _exclusive_slot(info, args, len(self._masters))
        return await self._acquire_routed(
            Classified(self, command or b"", tuple(args), {}, info, slot)
        )

    # -- AbcPool: pub/sub -------------------------------------------------

    def execute_pubsub(self, command: bytes | str, *channels: Any) -> Awaitable[Any]:
        """(Un)subscribe; SSUBSCRIBE goes to each channel's slot owner.

        Channels survive node failure, failover and slot moves: the same
        Channel objects keep delivering.
        """
        if self._closed:
            return failed(PoolClosedError("cluster pool is closed"))
        return self._pubsub.execute(command, channels)

    @property
    def _subscription_set(self) -> SubscriptionSet:
        return self._pubsub.subscriptions

    # -- scan -------------------------------------------------------------

    def iscan(self, *, match: bytes | str | None = None, count: int | None = None) -> Any:
        """Async iterator over the keys of every master (each key once per pass)."""
        from .scan import cluster_scan

        refresh = functools.partial(self._waits.refresh_now, "scan")
        return cluster_scan(
            self, refresh=refresh, node=self._nodes.node_pool, match=match, count=count
        )

    # -- stats ------------------------------------------------------------

    def _serving(self) -> list[ConnectionsPool]:
        return list(self._nodes.pools.values())

    def _node_stats(self) -> list[NodeStats]:
        return self._nodes.node_stats()

    def _stats_counters(self) -> dict[str, int]:
        return {"refreshes": self._nodes.reloads}

    # -- state ------------------------------------------------------------

    def _map_applied(self) -> None:
        self._pubsub.reconcile()
        if self._table_wanted:  # lazy start: the server's table after the first map
            self._table_wanted = False
            self._tasks.spawn(self._load_command_table())

    def _shutdown(self) -> None:
        self._pubsub.close()
        self._nodes.close()

    async def _drain(self) -> None:
        await self._refresh.close()
        await self._nodes.wait_closed()

    @property
    def address(self) -> None:
        """None: a cluster has no single address."""
        return None

    @property
    def db(self) -> int:
        """Always 0: a cluster has one database."""
        return 0

    @property
    def encoding(self) -> str | None:
        """The default reply codec."""
        return self._encoding

    async def clear(self) -> None:
        """Close every node pool's free connections (acquired ones close when released)."""
        await asyncio.gather(*(pool.clear() for pool in self._serving()))

    async def select(self, db: int) -> bool:
        """Only db 0 exists on a cluster."""
        if db != 0:
            raise RouteError("a Redis Cluster has only database 0")
        return True

    def __repr__(self) -> str:
        masters = len(self._masters)
        state = " closed" if self._closed else ""
        return f"<ClusterPool masters={masters} nodes={len(self._nodes.pools)}{state}>"


def _exclusive_slot(info: CommandInfo | None, args: Sequence[Any], masters: int) -> int | None:
    """The slot an exclusive connection is asked for; None without a key when the
    cluster has one master (it owns every key), else RouteError."""
    slot: int | None = None
    if info is not None:
        slot = info.slot_of(args)
    elif args:
        slot = key_slot(args[0])
    if slot is None and masters != 1:
        raise RouteError(
            "a cluster pool hands out connections of the node that owns a key: "
            "pass one, e.g. `pool.get(b'WATCH', [key])` or `pool.acquire(None, [key])` "
            "(without a key only on a cluster of one master)"
        )
    return slot


async def create_cluster_pool(
    startup_nodes: Iterable[Any],
    *,
    username: str | None = None,
    password: str | None = None,
    ssl: Any = None,
    encoding: str | None = None,
    minsize: int = 1,
    maxsize: int = 10,
    read_from: str = "master",
    max_redirects: int = 16,
    retry_timeout: float = 15.0,
    refresh: RefreshOptions | None = None,
    connect_timeout: float | Default | None = DEFAULT,
    pool_cls: type[ConnectionsPool] = ConnectionsPool,
    connection_cls: type[RedisConnection] | None = None,
    read_timeout: float | Default | None = DEFAULT,
    address_remap: AddressRemap | None = None,
    lazy: bool = False,
    credential_provider: CredentialProvider | None = None,
    client_az: str | None = None,
    max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
) -> ClusterPool:
    """Connect to a Redis Cluster and return a :class:`ClusterPool`.

    ``startup_nodes`` are ``(host, port)`` pairs or URLs of any nodes; the
    rest is discovered. ``read_from`` is ``"master"`` (default),
    ``"replica"``, ``"prefer_replica"``, ``"nearest"`` or ``"az_affinity"``
    (with ``client_az``: replicas in that availability zone, then other
    replicas, then the master; Valkey 8.1+) -- read-only commands only. A
    command is retried for at most ``max_redirects`` redirects and
    ``retry_timeout`` seconds in total, from the moment it is issued: an
    attempt still waiting when the budget ends fails with
    :class:`ClusterRetryError` saying whether it may have executed.
    ``connect_timeout`` (default 2 s) bounds opening a node connection.
    ``read_timeout`` (default 10 s, cut so that a stall is caught within
    ``retry_timeout``; ``None`` means just that) aborts a node connection whose replies stall
    that long (a hung or paused node); its commands are then retried like
    any connection failure, and the slot map is polled until the node
    answers or its slots move (see :mod:`clustermgr.bounds`).
    ``address_remap(host, port) -> (host, port)`` maps the addresses nodes
    announce (slot maps, MOVED/ASK) to the ones to connect to (startup nodes
    are used as given); a remap that raises fails with
    :class:`~clustermgr.remap.AddressRemapError`. Raises :class:`ConnectError`
    if no startup node returns a slot map, and the first error
    (``MaxClientsError``, ``AuthError``, ...) if no master can open
    ``minsize`` connections. With ``lazy`` it returns at once and the first
    command reads the slot map (a node not up yet fails that command, typed,
    once ``retry_timeout`` is spent). ``credential_provider``: asked at every
    connect to any node (see :meth:`ClusterPool.reauthenticate`).
    ``max_reply_size`` bounds one reply on every node connection.
    """
    check_options(lazy=lazy)
    pool = ClusterPool(cluster_settings(
        startup_nodes, username=username, password=password, ssl=ssl, encoding=encoding,
        minsize=minsize, maxsize=maxsize, read_from=read_from, max_redirects=max_redirects,
        retry_timeout=retry_timeout, refresh=refresh, connect_timeout=connect_timeout,
        pool_cls=pool_cls, connection_cls=connection_cls, read_timeout=read_timeout,
        address_remap=address_remap, credential_provider=credential_provider,
        client_az=client_az, max_reply_size=max_reply_size,
    ))
    if lazy:
        pool._start_lazily()
        return pool
    try:
        await pool._initialize()
    except BaseException:
        pool.close()
        await pool.wait_closed()
        raise
    return pool

