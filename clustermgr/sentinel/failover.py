"""Deciding which server(s) a SentinelPool sends commands to, and when.

:class:`Follower` owns the server pools of a :class:`~.pool.SentinelPool` and
publishes the *route* (the pool to use, and for ``role="replica"`` the
rotation of healthy replicas) to it; :class:`~.master.MasterFollower` and
:class:`~.replicas.ReplicaFollower` add what each role needs. The follower

* listens to every sentinel (:mod:`.monitor`). The first sign that our master
  is being replaced (``+odown``, ``+try-failover``, ...) *holds* commands
  (the route is cleared); once the replica is being promoted the old master is
  *fenced* (every connection closed, acquired ones too); commands are
  *released* to the new master at ``+promoted-slave`` once it answers
  ``ROLE`` master (with ``early_release``), or at ``+switch-master``. A
  failover that the leader aborts (``-failover-abort-*``, or ``-odown``
  before any stage) releases them to the old master again once the
  sentinels see it up.
* never goes back to a master it saw replaced unless a sentinel names it
  under a newer config epoch (elected again): a restarted old master that
  sentinels still name under its old epoch, before they switch, gets nothing.
  Server pools refuse a connection to a restarted process (``run_id``), so
  no pool reconnects to its address without a new decision here.
* installs only a decision that still holds when it is installed: every
  failover event that changes the picture bumps a *generation*; servers found
  (discovered, opened and ROLE-verified, all bounded by the connect timeout)
  under an older generation are discarded and the search starts again. This
  holds during startup too: events seen before the first install are
  recorded (deposed masters) and make the start decide again.
* rediscovers after READONLY, a broken connection or a wrong ROLE (reported
  by the pool, or seen by the ROLE watchdog). Rediscoveries are coalesced
  (one resolver at a time) and rate-limited (``rediscover_interval``); callers
  wait for the resolver, bounded by ``failover_timeout``.
* for replicas: keeps one pool per healthy replica (``SENTINEL REPLICAS``,
  skipping ``s_down``/``o_down``/``disconnected`` or a broken master link),
  drops one on ``+sdown``, a role change, a promotion or a connection error,
  and adds them back on ``-sdown``/``+slave``/... (coalesced, rate-limited
  refresh, plus one every few watchdog rounds).
* learns peer sentinels (``SENTINEL SENTINELS``, ``+sentinel``: :mod:`.peers`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from .._timeout import timeout as _timeout
from ..credentials import CredentialProviderError
from ..errors import (
    AuthError,
    ConnectionForcedCloseError,
    MasterNotFoundError,
    PoolClosedError,
    RedisError,
)
from ..pool import ConnectionsPool
from ..remap import AddressRemapError
from ._common import Address, Tasks, address_text, logger
from .errors import (
    FailoverTimeoutError,
    MasterDownError,
    NoHealthyReplicaError,
    RoleMismatchError,
    raise_no_usable,
)
from .events import SentinelEvent
from .hooks import PoolHooks
from .nodereports import NodeReports
from .peers import SentinelPeers
from .routegate import RouteGate
from .sentinel import RedisSentinel
from .servers import ServerPool, Servers
from .switches import Switches
from .watchdog import watch_roles

__all__ = ["Follower"]

#: Failures of a lazy start's first discovery that end the first commands at once:
#: the factory would have raised them, and no retry mends them.
_NEVER_RETRIED = (AuthError, AddressRemapError, CredentialProviderError)

#: What the first discovery may find while a failover moves the service: the app
#: waits (bounded by failover_timeout) instead of failing.
_PASSING_GAPS = (MasterDownError, NoHealthyReplicaError)


@dataclass
class Failover:
    """A failover of our master in progress, as seen through sentinel events."""

    old: Address | None
    since: float
    reason: str
    started: bool = False  # a failover stage (not just +odown) was seen
    aborted: bool = False  # -failover-abort-* / -odown before a stage: old master stays
    leader: Address | None = None  # the sentinel running it (+elected-leader and later stages)
    promoted: Address | None = None  # from +promoted-slave: the leader's point of no return
    switch_to: Address | None = None  # from +switch-master


class Follower:
    """Failover decisions for one :class:`~.pool.SentinelPool` (see the module doc).

    The role-neutral part: startup, installing and holding the route, the
    resolver, error reports, the ROLE watchdog and the lifecycle. Subclasses
    say where candidates come from and how sentinel events about the service
    change the picture.
    """

    #: "master" or "replica": what this follower routes to.
    role: ClassVar[str]

    def __init__(
        self,
        hooks: PoolHooks[ServerPool],
        sentinel: RedisSentinel,
        *,
        service: str,
        pool_kwargs: dict[str, Any],
        failover_timeout: float,
        rediscover_interval: float,
        poll_interval: float,
        role_check_interval: float | None,
        tasks: Tasks,
    ) -> None:
        self._hooks = hooks
        self._sentinel = sentinel
        self._service = service
        self._failover_timeout = failover_timeout
        self._rediscover_interval = rediscover_interval
        self._poll_interval = poll_interval
        self._role_check_interval = role_check_interval
        self._tasks = tasks
        self.servers = Servers(hooks, self.role, pool_kwargs, tasks)
        self.peers = SentinelPeers(sentinel, service, on_event=self.on_event,
                                   on_reconnect=self._on_sentinel_back)
        #: The pool commands go to now (for replicas: the first of the
        #: rotation, used for pub/sub and acquire); None while holding.
        self.active: ServerPool | None = None
        #: The pool last installed (may be held or fenced).
        self.current: ServerPool | None = None
        #: role="replica": every replica pool in the rotation (current included).
        self.replicas: list[ServerPool] = []
        #: role="master": the failover in progress, if any.
        self.failover: Failover | None = None
        self.last_error: BaseException | None = None
        self._ready: RouteGate[ServerPool] = RouteGate()
        self._lazy = False  # start_lazily() called, nothing started yet
        self._start_pending = False  # started lazily: _started() due after the first install
        self._resolver: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_discovery = float("-inf")
        self._nodes = NodeReports(service, hooks.events)
        self._closing = False
        self.switches = Switches(self.role, service)
        # Bumped by every failover event that changes the picture: a search
        # begun under an older generation is not installed (decided again).
        self._generation = 0

    # -- what a role adds ----------------------------------------------------------------

    async def _candidates(self) -> list[Address]:
        """Ask the sentinels for the addresses to try, best first."""
        raise NotImplementedError

    def _serving(self) -> list[ServerPool]:
        """The pools commands go to while not holding."""
        raise NotImplementedError

    def _on_service_event(self, event: SentinelEvent) -> None:
        """A sentinel event about our service, after the first install."""
        raise NotImplementedError

    def _on_startup_event(self, event: SentinelEvent) -> None:
        """A sentinel event about our service before the first install."""

    def _absorbs(self, pool: ConnectionsPool, exc: BaseException) -> bool:
        """Handle an error report without a rediscovery (True if handled)."""
        return False

    def _installing(self, pools: list[ServerPool], old: ServerPool | None, reason: str) -> None:
        """``pools`` are about to be installed in place of ``old``."""

    def _switched(self, old: ServerPool, current: ServerPool, failover: Failover | None,
                  reason: str, held: float | None) -> None:
        """The route moved from ``old`` to another server."""

    def _after_reconnect(self, sentinel: Address) -> None:
        """The event subscription to ``sentinel`` is back: events may have been missed."""

    # -- startup -----------------------------------------------------------------

    async def start(self) -> None:
        """Discover, verify and install the first server(s); start listening."""
        self.peers.watch_known()
        self._last_discovery = asyncio.get_running_loop().time()
        generation = self._generation
        try:
            candidates = await self._candidates()
        except _PASSING_GAPS as gap:
            candidates, self.last_error = [], gap
        pools, errors = await self._open_all(candidates)
        passing = not pools and all(isinstance(e, RoleMismatchError) for _a, e in errors)
        if self._generation != generation or passing:
            if passing:
                # The sentinels know the service but name no usable server yet (a
                # failover: master down, links to the new one opening, roles moving).
                logger.info("no usable %s of %r yet (%s): waiting up to %.1fs", self.role,
                            self._service, self.last_error or errors, self._failover_timeout)
            else:
                logger.info("failover news of %r during startup: deciding again",
                            self._service)
            for pool in pools:
                self.servers.discard(pool)
            self.hold()  # the resolver decides, bounded by failover_timeout
            await self.wait_active()
            await self._started()
            return
        if not pools:
            raise_no_usable(self.role, self._service, errors)
        self._install(pools, "initial discovery")
        await self._started()

    def start_lazily(self) -> None:
        """Connect nothing now: the first :meth:`wait_active` starts (see :meth:`start`)."""
        self._lazy = True

    def _start_late(self) -> None:
        self._lazy = False
        self._start_pending = True
        self.peers.watch_known()
        self.hold()

    async def _started(self) -> None:
        await self.peers.learn()
        if self._role_check_interval:
            self._tasks.spawn(watch_roles(
                self, self._role_check_interval, "master" if self.role == "master" else "slave",
                self.servers.check_timeout,
            ))

    # -- installing server pools -----------------------------------------------------

    def _reusable(self) -> list[ServerPool]:
        """Open pools we may keep using (none during a failover)."""
        if self.failover is not None and not self.failover.aborted:
            return []
        return [p for p in (self.current, *self.replicas) if p is not None]

    async def _open(self, address: Address) -> ServerPool:
        return await self.servers.open(address, self._reusable())

    async def _open_all(
        self, addresses: Iterable[Address]
    ) -> tuple[list[ServerPool], list[tuple[Address, BaseException]]]:
        return await self.servers.open_all(addresses, first_only=self.role == "master",
                                           reuse=self._reusable())

    def _install(self, pools: list[ServerPool], reason: str) -> None:
        """Route commands to ``pools`` (the master, or the healthy replicas)."""
        old = self.current
        failover, self.failover = self.failover, None
        for pool in self._serving():
            if pool not in pools:
                self.servers.fence(pool, reason)
        current = old if old is not None and old in pools and not old.closed else pools[0]
        self.current = current
        self._installing(pools, old, reason)
        if old is not None and old.address != current.address:
            held = self.switches.record(old.address, current.address, reason,
                                        failover.since if failover is not None else None)
            self._switched(old, current, failover, reason, held)
        elif old is None:
            logger.info("using %s %s of %r", self.role,
                        ", ".join(address_text(p.address) for p in pools), self._service)
        if current is not old:
            self._hooks.move_pubsub(current)
        self.last_error = None
        self.active = current
        self._publish()
        self._ready.open(current)
        if self._start_pending:  # a lazy start: what start() does after the first install
            self._start_pending = False
            self._tasks.spawn(self._started())

    def _publish(self) -> None:
        rotation = tuple(self.replicas) if len(self.replicas) > 1 else ()
        self._hooks.set_route(self.active, rotation)

    # -- holding and resolving -------------------------------------------------------

    def hold(self) -> None:
        """Stop sending commands until the resolver installs a (new) server."""
        self.active = None
        self._hooks.set_route(None, ())
        self._ready.shut()
        if self._resolver is None or self._resolver.done():
            self._resolver = self._tasks.spawn(self._resolve())
        self._wake.set()

    @property
    def holding(self) -> bool:
        """True while commands wait for a failover or a rediscovery."""
        return self.active is None and not self._closing

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    async def wait_active(self) -> ServerPool:
        """The pool to use, once there is one (bounded by ``failover_timeout``)."""
        pool = self.active
        if pool is not None:
            return pool
        if self._closing:
            raise PoolClosedError(f"sentinel pool for {self._service!r} is closed")
        if self._lazy:
            self._start_late()
        if self._resolver is None or self._resolver.done():
            self.hold()
        try:
            return await self._ready.wait(self._failover_timeout)
        except asyncio.TimeoutError:
            raise FailoverTimeoutError(
                f"no usable {self.role} of {self._service!r} within "
                f"{self._failover_timeout}s (last error: {self.last_error})"
            ) from None

    def report_error(self, pool: ConnectionsPool, exc: BaseException) -> None:
        """A command on ``pool`` failed with ``exc``: drop it or rediscover."""
        if self._closing or self.active is None:
            return
        if isinstance(exc, ConnectionForcedCloseError) and pool.closed:
            return  # we closed it (fenced / dropped)
        if self._absorbs(pool, exc) or pool is not self.current:
            return
        self.last_error = exc
        logger.info("rediscovering %s of %r after %s from %s: %s", self.role, self._service,
                    type(exc).__name__, address_text(pool.address), exc)
        self.hold()

    async def _resolve(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._failover_timeout
        self._new_search()
        while not self._closing:
            self._wake.clear()
            generation = self._generation
            try:
                pools = await self._find()
            except (RedisError, OSError) as exc:
                self.last_error = exc
                logger.debug("no %s for %r yet: %s", self.role, self._service, exc)
                if self.current is None and isinstance(exc, _NEVER_RETRIED):
                    self._give_up(exc)  # still starting: the cause, at once
                    return
                pools = None
            if pools and generation != self._generation:
                logger.info("failover news of %r while verifying %s: deciding again",
                            self._service, ", ".join(address_text(p.address) for p in pools))
                for pool in pools:
                    if pool is not self.current and pool not in self.replicas:
                        self.servers.discard(pool)
                continue
            if pools:
                if self._closing:
                    for pool in pools:
                        if pool not in self._serving():
                            self.servers.discard(pool)
                    return
                reason = "failover" if self.failover is not None else "rediscovery"
                self._install(pools, reason)
                return
            now = loop.time()
            if now >= deadline:
                failover = self.failover
                if failover is not None and not failover.aborted:
                    logger.warning(
                        "failover of %r not confirmed within %.1fs; trusting the sentinels",
                        self._service, self._failover_timeout)
                    failover.aborted = True
                    deadline = now + self._failover_timeout
                    continue
                self._give_up(self.last_error or MasterNotFoundError(
                    f"no usable {self.role} of {self._service!r}"))
                return
            try:
                async with _timeout(self._poll_interval):
                    await self._wake.wait()
            except asyncio.TimeoutError:
                pass

    def _give_up(self, error: BaseException) -> None:
        """End this search: the commands waiting for a server fail with ``error``."""
        logger.warning("giving up finding a %s of %r: %s", self.role, self._service, error)
        self.failover = None
        self._ready.fail(error)

    def _new_search(self) -> None:
        """A resolve begins (subclasses reset per-search state)."""

    async def _find(self) -> list[ServerPool] | None:
        """One attempt at the server(s) to install; None to try again later."""
        loop = asyncio.get_running_loop()
        wait = self._last_discovery + self._rediscover_interval - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        return await self._discover()

    async def _discover(self) -> list[ServerPool] | None:
        """Ask the sentinels now and open what they name."""
        self._last_discovery = asyncio.get_running_loop().time()
        pools, errors = await self._open_all(await self._candidates())
        if pools:
            return pools
        if errors:
            raise errors[-1][1]
        return None

    # -- sentinel events ---------------------------------------------------------------

    def _on_sentinel_back(self, address: Address) -> None:
        if self.active is not None:
            self._after_reconnect(address)

    def on_event(self, event: SentinelEvent) -> None:
        """Handle one sentinel event (each arrives once per sentinel: idempotent).

        ``+sentinel`` (a peer) is :class:`~.peers.SentinelPeers`' business.
        """
        if event.master_name != self._service or self._closing:
            return
        if self.current is None:
            self._on_startup_event(event)
            return
        self._nodes.heard(event)
        self._on_service_event(event)

    def _current_address(self) -> Address | None:
        pool = self.current
        if pool is None:
            return None
        address = pool.address
        return address if isinstance(address, tuple) else None

    # -- the watchdog's view ---------------------------------------------------------------

    def serving_now(self) -> list[ServerPool]:
        """The pools in use, or none while holding or closing (for the ROLE watchdog)."""
        if self.active is None or self._closing:
            return []
        return self._serving()

    def refresh(self) -> None:
        """Look for changes the events may not have told (the replica rotation)."""

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and close every server pool."""
        self._closing = True
        self.active = None
        self.peers.close()
        for pool in (self.current, *self.replicas):
            if pool is not None and not pool.closed:
                self.servers.discard(pool)
        self._ready.fail(PoolClosedError(f"sentinel pool for {self._service!r} was closed"))

    async def wait_closed(self) -> None:
        """Wait until the event subscriptions and server pools are closed."""
        await self.peers.wait_closed()
        await self.servers.wait_closed()
