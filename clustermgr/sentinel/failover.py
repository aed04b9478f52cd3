"""Deciding which server(s) a SentinelPool sends commands to, and when.

:class:`Follower` owns the server pools of a :class:`~.pool.SentinelPool` and
publishes the *route* (the pool to use, and for ``role="replica"`` the
rotation of healthy replicas) to it. It

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
* learns peer sentinels (``SENTINEL SENTINELS``, ``+sentinel``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._timeout import timeout as _timeout
from ..errors import (
    AuthError,
    ConnectionForcedCloseError,
    MasterNotFoundError,
    PoolClosedError,
    ReadOnlyError,
    RedisError,
    SlaveNotFoundError,
)
from ..events import FailoverDetected
from ..health import NodeHealth
from ..pool import ConnectionsPool
from ._common import Address, Tasks, address_text, logger
from .discovery import MasterView, discover_master, discover_replicas
from .errors import FailoverTimeoutError, RoleMismatchError
from .events import PROMOTION_EVENTS, SentinelEvent
from .hooks import PoolHooks
from .monitor import SentinelMonitor
from .sentinel import RedisSentinel
from .servers import ServerPool, Servers

__all__ = ["Follower"]

#: Replica events that may add a replica to the rotation.
_REPLICA_UP_EVENTS = frozenset({
    "-sdown", "+slave", "+reboot", "+slave-reconf-done", "+convert-to-slave",
})
#: Events that say a data node is down (+sdown) or answering again (the others).
_NODE_EVENTS = frozenset({"+sdown", "-sdown", "+reboot", "+convert-to-slave", "+slave"})
#: A full replica refresh every this many watchdog rounds.
_REFRESH_EVERY = 5


@dataclass
class _Failover:
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
    """Failover decisions for one :class:`~.pool.SentinelPool` (see the module doc)."""

    def __init__(
        self,
        hooks: PoolHooks[ServerPool],
        sentinel: RedisSentinel,
        *,
        service: str,
        role: str,
        pool_kwargs: dict[str, Any],
        failover_timeout: float,
        rediscover_interval: float,
        poll_interval: float,
        early_release: bool,
        role_check_interval: float | None,
        tasks: Tasks,
    ) -> None:
        self._hooks = hooks
        self._sentinel = sentinel
        self._service = service
        self._role = role
        self._failover_timeout = failover_timeout
        self._rediscover_interval = rediscover_interval
        self._poll_interval = poll_interval
        self._early_release = early_release
        self._role_check_interval = role_check_interval
        self._tasks = tasks
        self.servers = Servers(hooks, role, pool_kwargs, tasks)
        self.monitor = SentinelMonitor(
            connect=sentinel.open_connection,
            on_event=self.on_event, on_state=self._on_sentinel_state,
        )
        #: The pool commands go to now (for replicas: the first of the
        #: rotation, used for pub/sub and acquire); None while holding.
        self.active: ServerPool | None = None
        #: The pool last installed (may be held or fenced).
        self.current: ServerPool | None = None
        #: role="replica": every replica pool in the rotation (current included).
        self.replicas: list[ServerPool] = []
        self.failover: _Failover | None = None
        self.last_error: BaseException | None = None
        self._ready: asyncio.Future[ServerPool] = asyncio.get_running_loop().create_future()
        self._resolver: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_discovery = float("-inf")
        self._seen_sentinels: set[Address] = set()
        self._health = NodeHealth()
        self._closing = False
        self.switch_count = 0
        # The newest master config epoch any sentinel has shown us: a view older
        # than this names a master that a completed failover has replaced.
        self._epoch_floor = 0
        # Masters replaced by a failover we saw committed, with the config epoch
        # they held: one is used again only when a sentinel names it under a
        # newer epoch (sentinels elected it again), never on an old view.
        self._deposed: dict[Address, int] = {}
        self._stale_since: float | None = None
        # Bumped by every failover event that changes the picture: a search
        # begun under an older generation is not installed (decided again).
        self._generation = 0
        self.last_switch_at: float | None = None
        self.last_hold_duration: float | None = None

    # -- startup -----------------------------------------------------------------

    async def start(self) -> None:
        """Discover, verify and install the first server(s); start listening."""
        for address in self._sentinel.addresses:
            self.monitor.watch(address)
        self._last_discovery = asyncio.get_running_loop().time()
        generation = self._generation
        if self._role == "master":
            candidates, views = await discover_master(self._sentinel, self._service)
            candidates = self._fresh(candidates, views)
        else:
            candidates = await discover_replicas(self._sentinel, self._service)
        pools, errors = await self._open_all(candidates, first_only=self._role == "master")
        if self._generation != generation:
            logger.info("failover news of %r during startup: deciding again", self._service)
            for pool in pools:
                self.servers.discard(pool)
            self.hold()  # the resolver decides, bounded by failover_timeout
            await self.wait_active()
            await self._started()
            return
        if not pools:
            for address, exc in errors:
                if isinstance(exc, AuthError):
                    raise AuthError(
                        f"{self._role} {address_text(address)} of {self._service!r} refused "
                        f"the credentials: {exc}"
                    ) from exc
            not_found = MasterNotFoundError if self._role == "master" else SlaveNotFoundError
            raise not_found(
                f"no {self._role} of {self._service!r} could be used: "
                + "; ".join(f"{address_text(a)}: {e}" for a, e in errors)
            )
        self._install(pools, "initial discovery")
        await self._started()

    async def _started(self) -> None:
        await self._learn_sentinels()
        if self._role_check_interval:
            self._tasks.spawn(self._watchdog(self._role_check_interval))

    async def _learn_sentinels(self) -> None:
        try:
            peers = await self._sentinel.sentinels(self._service)
        except (RedisError, OSError) as exc:
            logger.debug("could not list the sentinels of %r: %s", self._service, exc)
            return
        for peer in peers:
            try:
                self._learn((peer["ip"], int(peer["port"])))
            except (KeyError, ValueError):
                continue

    def _learn(self, address: Address) -> None:
        if self._sentinel.add(address):
            logger.info("learned sentinel %s for %r", address_text(address), self._service)
        self.monitor.watch(address)

    # -- installing server pools -----------------------------------------------------

    def _reusable(self) -> list[ServerPool]:
        """Open pools we may keep using (none during a failover)."""
        if self.failover is not None and not self.failover.aborted:
            return []
        return [p for p in (self.current, *self.replicas) if p is not None]

    async def _open(self, address: Address) -> ServerPool:
        return await self.servers.open(address, self._reusable())

    async def _open_all(
        self, addresses: Iterable[Address], *, first_only: bool
    ) -> tuple[list[ServerPool], list[tuple[Address, BaseException]]]:
        return await self.servers.open_all(addresses, first_only=first_only,
                                           reuse=self._reusable())

    def _serving(self) -> list[ServerPool]:
        if self._role == "master":
            return [self.current] if self.current is not None else []
        return list(self.replicas)

    def _install(self, pools: list[ServerPool], reason: str) -> None:
        """Route commands to ``pools`` (the master, or the healthy replicas)."""
        loop = asyncio.get_running_loop()
        old = self.current
        failover, self.failover = self.failover, None
        for pool in self._serving():
            if pool not in pools:
                self.servers.fence(pool, reason)
        current = old if old is not None and old in pools and not old.closed else pools[0]
        self.current = current
        if self._role != "master":
            if old is not None and pools != self.replicas:
                logger.info("replicas of %r: %s (%s)", self._service,
                            ", ".join(address_text(p.address) for p in pools), reason)
            self.replicas = list(pools)
        if old is not None and old.address != current.address:
            if self._role == "master" and isinstance(old.address, tuple):
                self._depose(old.address)
            self.switch_count += 1
            self.last_switch_at = loop.time()
            held = loop.time() - failover.since if failover is not None else None
            self.last_hold_duration = held
            logger.info(
                "%s of %r switched %s -> %s (%s; commands held %s)",
                self._role, self._service, address_text(old.address),
                address_text(current.address), reason,
                f"{held * 1000:.0f} ms" if held is not None else "0 ms",
            )
            if self._role == "master" and reason == "failover":
                self._tasks.spawn(self._observe_epoch())
            events = self._hooks.events
            if events.active and self._role == "master":
                how = f"sentinel {failover.reason}" if failover is not None else reason
                events.emit(FailoverDetected(
                    old.address if isinstance(old.address, tuple) else None,
                    current.address if isinstance(current.address, tuple) else None,
                    detected_by=f"{how}; switched after {reason}", service=self._service,
                    at=time.time() - (held or 0.0),
                ))
        elif old is None:
            logger.info("using %s %s of %r", self._role,
                        ", ".join(address_text(p.address) for p in pools), self._service)
        if current is not old:
            self._hooks.move_pubsub(current)
        self.last_error = None
        self.active = current
        self._publish()
        if self._ready.done():
            self._ready = loop.create_future()
        self._ready.set_result(current)

    def _publish(self) -> None:
        rotation = tuple(self.replicas) if len(self.replicas) > 1 else ()
        self._hooks.set_route(self.active, rotation)

    # -- replicas: the rotation ----------------------------------------------------

    def _pool_at(self, address: Address | None) -> ServerPool | None:
        return next((p for p in self.replicas if p.address == address), None)

    def _drop_replica(self, pool: ServerPool, reason: str) -> None:
        """Take one replica out of the rotation; hold if it was the last."""
        if pool not in self.replicas:
            return
        self.replicas.remove(pool)
        self.servers.fence(pool, reason)
        self._refresh()
        if not self.replicas:
            logger.info("no replica of %r left (%s): rediscovering", self._service, reason)
            self.hold()
            return
        if pool is self.current:
            self.current = self.replicas[0]
            self._hooks.move_pubsub(self.current)
            if self.active is not None:
                self.active = self.current
        self._publish()
        logger.info("replica %s of %r dropped (%s); %d left", address_text(pool.address),
                    self._service, reason, len(self.replicas))

    def _refresh(self) -> None:
        """Ask the sentinels for healthy replicas soon (coalesced, rate-limited)."""
        if self._role == "master" or self._closing:
            return
        if self._refresher is None or self._refresher.done():
            self._refresher = self._tasks.spawn(self._refresh_replicas())

    async def _refresh_replicas(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last_discovery + self._rediscover_interval - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.active is None or self._closing:
            return  # the resolver is at work
        self._last_discovery = loop.time()
        try:
            healthy = await discover_replicas(self._sentinel, self._service)
        except (RedisError, OSError) as exc:
            logger.debug("replica refresh of %r failed: %s", self._service, exc)
            return
        known = {p.address for p in self.replicas}
        gone = [p for p in self.replicas if p.address not in healthy]
        new, _errors = await self._open_all(
            [a for a in healthy if a not in known], first_only=False)
        if self.active is None or self._closing:
            for pool in new:
                self.servers.discard(pool)
            return
        keep = [p for p in self.replicas if p not in gone and not p.closed]
        if not keep and not new:
            return  # sentinels see no healthy replica; keep serving what answers
        if not new and not gone:
            return
        self._install(keep + new, "replica refresh")

    # -- holding and resolving -------------------------------------------------------

    def hold(self) -> None:
        """Stop sending commands until the resolver installs a (new) server."""
        self.active = None
        self._hooks.set_route(None, ())
        if self._ready.done():
            self._ready = asyncio.get_running_loop().create_future()
        if self._resolver is None or self._resolver.done():
            self._resolver = self._tasks.spawn(self._resolve())
        self._wake.set()

    @property
    def holding(self) -> bool:
        """True while commands wait for a failover or a rediscovery."""
        return self.active is None and not self._closing

    async def wait_active(self) -> ServerPool:
        """The pool to use, once there is one (bounded by ``failover_timeout``)."""
        pool = self.active
        if pool is not None:
            return pool
        if self._closing:
            raise PoolClosedError(f"sentinel pool for {self._service!r} is closed")
        if self._resolver is None or self._resolver.done():
            self.hold()
        ready = self._ready
        try:
            async with _timeout(self._failover_timeout):
                return await asyncio.shield(ready)
        except asyncio.TimeoutError:
            raise FailoverTimeoutError(
                f"no usable {self._role} of {self._service!r} within "
                f"{self._failover_timeout}s (last error: {self.last_error})"
            ) from None

    def report_error(self, pool: ConnectionsPool, exc: BaseException) -> None:
        """A command on ``pool`` failed with ``exc``: drop it or rediscover."""
        if self._closing or self.active is None:
            return
        if isinstance(exc, ConnectionForcedCloseError) and pool.closed:
            return  # we closed it (fenced / dropped)
        if self._role != "master":
            if isinstance(exc, ReadOnlyError):
                return  # a write sent to a replica: the caller's mistake, not ours
            replica = pool if isinstance(pool, ServerPool) and pool in self.replicas else None
            if replica is not None and len(self.replicas) > 1:
                self._drop_replica(replica, f"{type(exc).__name__}: {exc}")
                return
        if pool is not self.current:
            return
        self.last_error = exc
        logger.info("rediscovering %s of %r after %s from %s: %s", self._role, self._service,
                    type(exc).__name__, address_text(pool.address), exc)
        self.hold()

    async def _resolve(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._failover_timeout
        self._stale_since = None  # stale views are timed within one resolve only
        while not self._closing:
            self._wake.clear()
            generation = self._generation
            try:
                pools = await self._find()
            except (RedisError, OSError) as exc:
                self.last_error = exc
                logger.debug("no %s for %r yet: %s", self._role, self._service, exc)
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
                error = self.last_error or MasterNotFoundError(
                    f"no usable {self._role} of {self._service!r}")
                logger.warning("giving up finding a %s of %r: %s", self._role, self._service,
                               error)
                self.failover = None
                if not self._ready.done():
                    self._ready.set_exception(error)
                    self._ready.exception()  # retrieved: nobody may be waiting
                return
            try:
                async with _timeout(self._poll_interval):
                    await self._wake.wait()
            except asyncio.TimeoutError:
                pass

    async def _find(self) -> list[ServerPool] | None:
        """One attempt at the server(s) to install; None to try again later."""
        loop = asyncio.get_running_loop()
        failover = self.failover
        if failover is not None and not failover.aborted:
            if failover.switch_to is not None and failover.switch_to != failover.old:
                return [await self._open(failover.switch_to)]
            if (
                self._early_release
                and failover.promoted is not None
                and failover.promoted != failover.old
            ):
                # Only after +promoted-slave: the leader has seen the replica
                # become master and raised the config epoch, so the failover
                # can no longer be aborted. A replica (or a restarted old
                # master) answering ROLE master earlier proves nothing.
                try:
                    return [await self._open(failover.promoted)]
                except RoleMismatchError:
                    pass
            if loop.time() - self._last_discovery < self._rediscover_interval * 2.5:
                return None
        else:
            wait = self._last_discovery + self._rediscover_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        self._last_discovery = loop.time()
        if self._role == "master":
            candidates, views = await discover_master(self._sentinel, self._service)
            candidates = self._fresh(candidates, views)
            if failover is not None and not failover.aborted:
                # Sentinels have not switched yet: keep holding.
                candidates = [a for a in candidates if a != failover.old]
        else:
            candidates = await discover_replicas(self._sentinel, self._service)
        pools, errors = await self._open_all(candidates, first_only=self._role == "master")
        if pools:
            return pools
        if errors:
            raise errors[-1][1]
        return None

    def _fresh(self, candidates: list[Address], views: list[MasterView]) -> list[Address]:
        """Drop candidates named only under a config epoch older than one already seen.

        Sentinel raises a master's config epoch only when a failover completes,
        so a view with an older epoch is stale news: following it would send
        writes to a master that is being (or has been) demoted. A master we
        saw replaced (:meth:`_depose`) is stale too unless named under a newer
        epoch than it had. If nothing fresh shows up for ``failover_timeout``
        within one resolve (the sentinels were reset, or kept the old master
        after an abort we missed), a stale view is accepted with a warning:
        far longer than the seconds between a promotion and +switch-master.
        """
        newest = max((v.config_epoch for v in views), default=0)
        floor = max(self._epoch_floor, newest)
        epochs: dict[Address, int] = {}
        for view in views:
            if not view.reports_down:
                epochs[view.address] = max(epochs.get(view.address, 0), view.config_epoch)
        # A master we saw replaced is fresh only under a newer epoch than it
        # had, even when every sentinel names it (it restarted before they switched).
        fresh = [a for a in candidates
                 if floor <= epochs.get(a, 0) > self._deposed.get(a, -1)]
        if fresh or not candidates:
            self._epoch_floor = floor
            self._stale_since = None
            return fresh
        now = asyncio.get_running_loop().time()
        if self._stale_since is None:
            self._stale_since = now
        if now - self._stale_since < self._failover_timeout:
            logger.info("ignoring stale view of %r: %s named under config epoch %d "
                        "(newest seen %d, or a master replaced under it)",
                        self._service, ", ".join(address_text(a) for a in candidates),
                        max(epochs.get(a, 0) for a in candidates), floor)
            return []
        logger.warning("only stale views of %r for %.1fs: accepting %s",
                       self._service, now - self._stale_since, address_text(candidates[0]))
        self._epoch_floor = max(epochs.get(a, 0) for a in candidates)
        self._stale_since = None
        self._undepose(candidates[0])
        return candidates

    def _depose(self, address: Address | None) -> None:
        """``address`` was replaced by a committed failover: fence it from old views."""
        if address is not None and self._deposed.get(address, -1) < self._epoch_floor:
            self._deposed[address] = self._epoch_floor
            self._generation += 1

    def _undepose(self, address: Address | None) -> None:
        """The leader aborted the failover of ``address``: it stays the master."""
        if address is not None:
            self._deposed.pop(address, None)

    async def _observe_epoch(self) -> None:
        """After a switch learnt from events, record the new config epoch."""
        try:
            _candidates, views = await discover_master(self._sentinel, self._service)
        except (RedisError, OSError):
            return
        current = self.current.address if self.current is not None else None
        for view in views:
            if view.address == current:
                self._epoch_floor = max(self._epoch_floor, view.config_epoch)

    # -- sentinel events ---------------------------------------------------------------

    def _on_sentinel_state(self, address: Address, up: bool) -> None:
        if not up:
            logger.info("sentinel %s lost (event subscription down)", address_text(address))
            return
        if address in self._seen_sentinels and self.active is not None:
            # Reconnected: events may have been missed; compare its view with ours.
            self._tasks.spawn(self._check_view(address))
        self._seen_sentinels.add(address)

    async def _check_view(self, sentinel: Address) -> None:
        if self._role != "master":
            self._refresh()
            return
        try:
            reply = await self._sentinel.execute_on(
                sentinel, b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", self._service)
        except (RedisError, OSError):
            return
        if not reply or self.current is None:
            return
        host = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if (host, int(reply[1])) != self.current.address and self.active is not None:
            logger.info("sentinel %s names another master for %r: rediscovering",
                        address_text(sentinel), self._service)
            self.hold()

    def on_event(self, event: SentinelEvent) -> None:
        """Handle one sentinel event (each arrives once per sentinel: idempotent)."""
        if event.kind == "+sentinel" and event.address is not None:
            if event.master_name == self._service:
                self._learn(event.address)
            return
        if event.master_name != self._service or self._closing:
            return
        if self.current is None:
            self._on_startup_event(event)
            return
        if event.kind in _NODE_EVENTS and event.address is not None and (
            event.instance_type in ("master", "slave", "replica")
        ):
            self._node_event(event)
        if self._role == "master":
            self._on_master_event(event)
        else:
            self._on_replica_event(event)

    def _on_startup_event(self, event: SentinelEvent) -> None:
        """Before the first install: record what a failover changes, decide again."""
        if self._role != "master" or self.failover is not None:
            return
        if event.kind == "+switch-master" or event.kind in PROMOTION_EVENTS:
            self._depose(event.master_address)
            if event.master_address is not None:
                self.servers.fence_opening(event.master_address)
        elif not (event.is_failover_start or event.is_failover_abort):
            return
        self._generation += 1

    def _on_master_event(self, event: SentinelEvent) -> None:
        failover = self.failover
        ours = failover.old if failover is not None else self._current_address()
        if event.kind == "+switch-master":
            new = event.address
            if new is None or (failover is None and new == ours):
                return
            if failover is None or failover.switch_to != new:
                logger.info("+switch-master from sentinel %s: %r %s -> %s",
                            address_text(event.source), self._service,
                            address_text(event.master_address), address_text(new))
            self._begin_failover(event)
            if self.failover is not None:
                if new not in (self.failover.switch_to, self.failover.promoted):
                    self._generation += 1
                self.failover.switch_to = new
                self.failover.started = True
            self._wake.set()
            return
        if (event.kind == "+convert-to-slave" and failover is None and ours is not None
                and event.address == ours and self.current is not None):
            # The sentinels turn our master into a replica of another: it was
            # replaced (maybe while we could not hear it). Fence, decide again.
            logger.info("sentinel %s converts master %s of %r to a replica: rediscovering",
                        address_text(event.source), address_text(ours), self._service)
            self._depose(ours)
            self._generation += 1
            self.servers.fence(self.current, f"{event.kind} from sentinel "
                               f"{address_text(event.source)}")
            self.hold()
            return
        if event.master_address != ours:
            return  # about an earlier incarnation of the master
        if event.is_failover_start:
            self._begin_failover(event)
            failover = self.failover
            if failover is None:
                return
            if event.kind not in ("+odown", "+try-failover"):
                failover.leader = event.source  # only the leader publishes these
            if event.kind != "+odown":
                failover.started = True
                failover.aborted = False
            if event.kind == "+promoted-slave" and event.address not in (None, failover.promoted):
                failover.promoted = event.address
                self._generation += 1
            if event.kind in PROMOTION_EVENTS:
                self._depose(failover.old)
                if failover.old is not None:
                    self.servers.fence_opening(failover.old)
                if self.current is not None:
                    self.servers.fence(self.current,
                                f"{event.kind} from sentinel {address_text(event.source)}")
            self._wake.set()
        elif failover is not None and (
            (event.is_failover_abort and failover.leader in (None, event.source))
            or (event.kind == "-odown" and not failover.started)
        ):
            # An abort counts from the leader only: a sentinel that lost the
            # election aborts its own attempt while the leader goes on.
            if not failover.aborted:
                logger.info("failover of %r ended without a switch (%s): rechecking master",
                            self._service, event.kind)
                self._generation += 1
            failover.aborted = True
            self._undepose(failover.old)
            self._wake.set()
        elif (
            event.kind in ("+role-change", "+convert-to-slave")
            and event.instance_type == "master"
            and "slave" in event.payload.split("role is", 1)[-1]
            and self.active is not None
        ):
            logger.info("sentinel reports master %s of %r demoted: rediscovering",
                        address_text(ours), self._service)
            self._generation += 1
            self.hold()

    def _node_event(self, event: SentinelEvent) -> None:
        assert event.address is not None
        reason = f"{event.kind} {event.instance_type} from sentinel {address_text(event.source)}"
        change = self._health.report(event.address, event.kind != "+sdown", reason)
        if change is None:
            return
        logger.info("%s, service %r", change.describe(), self._service)
        if self._hooks.events.active:
            self._hooks.events.emit(change)

    def _begin_failover(self, event: SentinelEvent) -> None:
        if self.failover is not None:
            return
        loop = asyncio.get_running_loop()
        self._generation += 1
        self.failover = _Failover(
            old=self._current_address(), since=loop.time(), reason=event.kind,
        )
        logger.info("failover of %r master %s detected (%s from sentinel %s): holding commands",
                    self._service, address_text(self._current_address()), event.kind,
                    address_text(event.source))
        self.hold()

    def _on_replica_event(self, event: SentinelEvent) -> None:
        kind = event.kind
        if kind == "+switch-master":
            # The promoted replica is a master now; the old one may come back as a replica.
            pool = self._pool_at(event.address)
            if pool is not None:
                self._drop_replica(pool, f"promoted ({kind})")
            self._refresh()
            return
        if event.instance_type not in ("slave", "replica") or event.address is None:
            return
        pool = self._pool_at(event.address)
        if kind in ("+sdown", "+odown") or (
            kind == "+role-change" and "master" in event.payload.split("role is", 1)[-1]
        ):
            if pool is not None:
                self._drop_replica(pool, f"{kind} from sentinel {address_text(event.source)}")
        elif pool is None and (kind in _REPLICA_UP_EVENTS or kind == "+role-change"):
            self._refresh()

    def _current_address(self) -> Address | None:
        pool = self.current
        if pool is None:
            return None
        address = pool.address
        return address if isinstance(address, tuple) else None

    # -- watchdog ------------------------------------------------------------------------

    async def _watchdog(self, interval: float) -> None:
        """Check ROLE of the server(s) in use every ``interval`` s (events may be missed)."""
        expected = "master" if self._role == "master" else "slave"
        rounds = 0
        while not self._closing:
            await asyncio.sleep(interval)
            if self.active is None:
                continue
            pools = self._serving()
            replies = await asyncio.gather(
                *(self._role_of(p) for p in pools), return_exceptions=True)
            for pool, reply in zip(pools, replies, strict=True):
                if isinstance(reply, (RedisError, OSError)):
                    self.report_error(pool, reply)
                    continue
                if isinstance(reply, BaseException):
                    raise reply
                actual = reply[0].decode() if reply and isinstance(reply[0], bytes) else "?"
                if actual != expected:
                    self.report_error(pool, RoleMismatchError(pool.address, self._role, actual))
            rounds += 1
            if rounds % _REFRESH_EVERY == 0:
                self._refresh()

    @staticmethod
    async def _role_of(pool: ServerPool) -> Any:
        # A coroutine, so that a pool closed meanwhile fails here, in the gather.
        return await pool.execute(b"ROLE", encoding=None)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and close every server pool."""
        self._closing = True
        self.active = None
        self.monitor.close()
        for pool in (self.current, *self.replicas):
            if pool is not None and not pool.closed:
                self.servers.discard(pool)
        if not self._ready.done():
            self._ready.set_exception(
                PoolClosedError(f"sentinel pool for {self._service!r} was closed"))
            self._ready.exception()

    async def wait_closed(self) -> None:
        """Wait until the event subscriptions and server pools are closed."""
        await self.monitor.wait_closed()
        await self.servers.wait_closed()
