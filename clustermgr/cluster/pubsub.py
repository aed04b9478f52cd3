"""Pub/sub on a cluster: desired subscriptions reconciled against node pools.

SUBSCRIBE/PSUBSCRIBE run on one master's dedicated pub/sub connection (the
cluster bus broadcasts PUBLISH to every node); SSUBSCRIBE runs on the master
owning each channel's slot. The caller's :class:`~clustermgr.pubsub.Channel`
objects are the *desired state*; each node pool is subscribed with a small
relay that forwards messages to them. When a relay is lost (the node pool
closed, the server pushed SUNSUBSCRIBE after a slot move, the owner changed in
a new slot map) a fresh relay is subscribed on the current owner, and the same
Channel objects keep delivering.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from ..backoff import Backoff
from ..errors import ConnectionClosedError, PoolClosedError, RedisError, TimeoutError
from ..events import EventBus, PubSubDisconnected, PubSubResubscribed
from ..pool import ConnectionsPool
from ..slots import key_slot
from ..subscriptions import REFUSED, Relay, SubscriptionSet
from ..tasks import consume

__all__ = ["ClusterPubSub"]

_FOLLOW = Backoff(0.05, 1.0)  # reloads while a node's pub/sub connection is lost
_RESUBSCRIBE = Backoff(base=0.02, cap=1.0)  # between tries to place one subscription

logger = logging.getLogger("clustermgr.pubsub")

# kind -> (subscribe command, unsubscribe command, confirmation names)
_WIRE = {
    "channels": (b"SUBSCRIBE", b"UNSUBSCRIBE", (b"subscribe", b"unsubscribe")),
    "patterns": (b"PSUBSCRIBE", b"PUNSUBSCRIBE", (b"psubscribe", b"punsubscribe")),
    "shard_channels": (b"SSUBSCRIBE", b"SUNSUBSCRIBE", (b"ssubscribe", b"sunsubscribe")),
}

Key = tuple[str, bytes]


class _Route(NamedTuple):
    """Where one desired subscription is subscribed now: a relay on a node pool."""

    relay: Relay
    pool: ConnectionsPool


class ClusterPubSub:
    """The pub/sub side of a :class:`~clustermgr.cluster.ClusterPool`.

    What it needs of the cluster pool comes in as callables: ``spawn(coro)``
    runs a task in the pool's task set; ``slot_owner(slot)`` and ``masters()``
    read the current routes; ``refresh(reason)`` reloads the slot map and
    waits, ``trigger(reason)`` asks for a reload soon, ``poll(reason)`` waits
    for the next reload at the short interval of held commands. ``retry_timeout``
    bounds a (un)subscribe and the polling after a lost connection; ``events``
    is the pool's event bus.
    """

    def __init__(
        self,
        *,
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
        slot_owner: Callable[[int], ConnectionsPool | None],
        masters: Callable[[], Sequence[ConnectionsPool]],
        refresh: Callable[[str], Awaitable[None]],
        trigger: Callable[[str], object],
        poll: Callable[[str], Awaitable[None]],
        retry_timeout: float,
        events: EventBus,
    ) -> None:
        self._spawn = spawn
        self._slot_owner = slot_owner
        self._masters = masters
        self._refresh = refresh
        self._trigger = trigger
        self._poll = poll
        self._retry_timeout = retry_timeout
        self._events = events
        self._set = SubscriptionSet()
        self._relays: dict[Key, _Route] = {}
        self._syncs: dict[Key, asyncio.Task[None]] = {}
        self._home: ConnectionsPool | None = None
        self._lost_at: dict[Key, float] = {}  # wall-clock time a subscription went away
        self._following: dict[ConnectionsPool, asyncio.Task[None]] = {}  # pub/sub link down
        self._closed = False

    # -- views -------------------------------------------------------------

    @property
    def subscriptions(self) -> SubscriptionSet:
        """The desired subscriptions (str keys work in its views)."""
        return self._set

    # -- commands ----------------------------------------------------------

    def execute(self, command: bytes | str, channels: tuple[Any, ...]) -> Awaitable[Any]:
        """(Un)subscribe ``channels``; the awaitable gives the confirmations."""
        if self._closed:
            raise PoolClosedError("cluster pool is closed")
        request = self._set.parse(command, channels)
        kind = request.registry
        names, targets = request.names, request.channels
        if request.subscribing:
            self._set.add(kind, targets)
            tasks = [self._schedule((kind, t.name)) for t in targets]
            return self._spawn(self._confirm(kind, names, tasks))
        removed = self._set.remove(kind, names)
        for channel in removed:
            self._forget((kind, channel.name))
            channel.close()
        # Without names: one confirmation per channel it ended, as the server sends.
        names = names or [channel.name for channel in removed]
        return self._spawn(self._confirm(kind, names, [], unsubscribe=True))

    async def _confirm(
        self, kind: str, names: list[bytes], tasks: list[asyncio.Task[None]],
        unsubscribe: bool = False,
    ) -> list[list[Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_timeout
        while tasks and not self._closed:
            # A sync may be restarted (new slot map) while we wait: follow the new one.
            try:
                await asyncio.wait(tasks)
            except asyncio.CancelledError:
                if self._closed:  # the cluster pool cancels its tasks on close
                    raise PoolClosedError("cluster pool was closed") from None
                raise
            for done in tasks:
                error = done.exception() if done.done() and not done.cancelled() else None
                if isinstance(error, REFUSED):
                    raise error
            tasks = [
                task
                for name in names
                if (task := self._syncs.get((kind, name))) is not None and not task.done()
            ]
            if tasks and loop.time() >= deadline:
                raise TimeoutError(f"subscribing {names!r} did not finish in time")
        if self._closed:
            raise PoolClosedError("cluster pool was closed")
        word = _WIRE[kind][2][1 if unsubscribe else 0]
        count = self._set.count
        return [[word, name, count] for name in names] or [[word, None, count]]

    # -- desired vs actual -------------------------------------------------

    def _owner(self, key: Key) -> ConnectionsPool | None:
        kind, name = key
        if kind == "shard_channels":
            return self._slot_owner(key_slot(name))
        home = self._home
        masters = self._masters()
        if home is None or home.closed or home not in masters:
            self._home = home = masters[0] if masters else None
        return home

    def reconcile(self) -> None:
        """Move every subscription whose owner changed (called on each new slot map)."""
        if self._closed:
            return
        for kind, name, _ in self._set.items():
            key = (kind, name)
            route = self._relays.get(key)
            owner = self._owner(key)
            if route is None or route.pool is not owner or route.pool.closed:
                running = self._syncs.get(key)
                if running is not None and route is None:
                    continue  # a sync is already finding the owner
                self._schedule(key, restart=True)

    def _schedule(
        self, key: Key, *, restart: bool = False, refresh_first: bool = False
    ) -> asyncio.Task[None]:
        running = self._syncs.get(key)
        if running is not None and not running.done():
            if not restart:
                return running
            running.cancel()
        task = self._spawn(self._sync(key, refresh_first))
        self._syncs[key] = task
        task.add_done_callback(functools.partial(self._sync_done, key))
        return task

    def _sync_done(self, key: Key, task: asyncio.Task[None]) -> None:
        if self._syncs.get(key) is task:
            del self._syncs[key]
        consume(task)

    async def _sync(self, key: Key, refresh_first: bool) -> None:
        kind, name = key
        attempt = 0
        if refresh_first:
            await self._refresh("pubsub moved")
        while not self._closed:
            target = self._set.get(kind, name)
            if target is None:
                return
            pool = self._owner(key)
            route = self._relays.get(key)
            if route is not None and route.relay.target is not target:
                self._drop(key, route)  # subscribed again with a new channel: relay that one
                route = None
            if pool is not None and route is not None and route.pool is pool and not (
                route.relay.retired or pool.closed
            ):
                return
            if route is not None:
                self._lost_at.setdefault(key, time.time())
                self._drop(key, route)
            if pool is None or pool.closed:
                await self._refresh("pubsub owner")
            else:
                relay = Relay(target, functools.partial(self._lost, key, pool))
                route = self._relays[key] = _Route(relay, pool)
                pool.on_pubsub_lost = self._node_lost
                pool.on_resubscribed = self._node_back
                try:
                    await pool.execute_pubsub(_WIRE[kind][0], relay)
                    lost_at = self._lost_at.pop(key, None)
                    if attempt or lost_at is not None:
                        logger.info("resubscribed %s %r on %s", kind, name, pool.address)
                    if lost_at is not None:
                        self._restored(key, pool, lost_at)
                    continue  # check again: the owner may have changed meanwhile
                except asyncio.CancelledError:
                    self._drop(key, route)
                    raise
                except (RedisError, OSError) as exc:  # MOVED, CLUSTERDOWN, pool closed...
                    self._drop(key, route)
                    if isinstance(exc, REFUSED):  # NOPERM, NOAUTH: no node will take it
                        if self._set.discard(kind, target):
                            target.close(exc)
                        raise
                    if isinstance(exc, (PoolClosedError, ConnectionClosedError)):
                        self._trigger("pubsub connection")
                    else:
                        await self._refresh("pubsub redirect")
            attempt += 1
            await _RESUBSCRIBE.sleep(attempt)

    def _node_lost(self, pool: ConnectionsPool, cause: BaseException | None) -> None:
        """A node's pub/sub connection dropped: follow the slot map until it is back.

        A pool used only for pub/sub sends no command that would fail and
        trigger a reload, so the lost connection does.
        """
        if not self._closed and pool not in self._following:
            task = self._spawn(self._follow(pool))
            self._following[pool] = task
            task.add_done_callback(functools.partial(self._followed, pool))

    def _node_back(self, pool: ConnectionsPool, gap: float) -> None:
        task = self._following.get(pool)
        if task is not None:
            task.cancel()

    def _followed(self, pool: ConnectionsPool, task: asyncio.Task[None]) -> None:
        if self._following.get(pool) is task:
            del self._following[pool]
        consume(task)

    async def _follow(self, pool: ConnectionsPool) -> None:
        """Reload the slot map until nothing is routed to ``pool`` (each reload reconciles).

        Polled like a held command for ``retry_timeout`` (the map moves the
        subscriptions the moment a replica is promoted), then backed off.
        """
        loop = asyncio.get_running_loop()
        polling_until = loop.time() + self._retry_timeout
        attempt = 0
        while not (self._closed or pool.closed) and any(
            route.pool is pool for route in self._relays.values()
        ):
            if loop.time() < polling_until:
                await self._poll("pubsub connection lost")
                continue
            await self._refresh("pubsub connection lost")
            attempt += 1
            await _FOLLOW.sleep(attempt)

    def _restored(self, key: Key, pool: ConnectionsPool, lost_at: float) -> None:
        pool.counters.resubscribes += 1
        events = self._events
        if events.active:
            names = {kind: (key[1],) if kind == key[0] else () for kind in _WIRE}
            events.emit(PubSubResubscribed(
                pool.address, names["channels"], names["patterns"], names["shard_channels"],
                lost_at=lost_at, gap_ms=(time.time() - lost_at) * 1000,
            ))

    def _drop(self, key: Key, route: _Route) -> None:
        """Retire a relay and unsubscribe it from its node pool."""
        route.relay.retired = True
        if self._relays.get(key) is route:
            del self._relays[key]
        pool = route.pool
        if pool.closed:
            return
        # Synchronous registration: the pool drops it from its desired state now.
        with contextlib.suppress(RedisError, OSError):
            pending = pool.execute_pubsub(_WIRE[key[0]][1], key[1])
            pending.add_done_callback(consume)  # type: ignore[attr-defined]

    def _forget(self, key: Key) -> None:
        running = self._syncs.pop(key, None)
        if running is not None:
            running.cancel()
        route = self._relays.get(key)
        if route is not None:
            self._drop(key, route)

    def _lost(
        self, key: Key, pool: ConnectionsPool, relay: Relay, exc: BaseException | None
    ) -> None:
        """A relay was closed under us (slot moved, node pool closed)."""
        route = self._relays.get(key)
        if route is not None and route.relay is relay:
            del self._relays[key]
        if self._closed or self._set.get(*key) is None or isinstance(exc, REFUSED):
            return  # (a refusal is failed by the running sync)
        reason = str(exc or "unsubscribed by the server")
        logger.info("%s %r lost on %s (%s); resubscribing", key[0], key[1],
                    pool.address, reason)
        lost_at = self._lost_at.setdefault(key, time.time())
        events = self._events
        if events.active:
            names = {kind: (key[1],) if kind == key[0] else () for kind in _WIRE}
            events.emit(PubSubDisconnected(
                pool.address, names["channels"], names["patterns"], names["shard_channels"],
                reason=reason, at=lost_at,
            ))
        self._schedule(key, restart=True, refresh_first=True)

    def close(self) -> None:
        """Close every channel; the node pools are closed by the cluster pool."""
        self._closed = True
        for route in self._relays.values():
            route.relay.retired = True
        self._relays.clear()
        for task in (*self._syncs.values(), *self._following.values()):
            task.cancel()
        self._syncs.clear()
        self._set.close_all()
