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
import random
import time
from collections.abc import Awaitable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..abc import AbcChannel
from ..errors import ConnectionClosedError, PoolClosedError, RedisError, TimeoutError
from ..events import PubSubDisconnected, PubSubResubscribed
from ..pool import ConnectionsPool
from ..pubsub import parse_pubsub
from ..slots import key_slot

if TYPE_CHECKING:
    from .pool import ClusterPool

__all__ = ["ClusterPubSub"]

logger = logging.getLogger("clustermgr.pubsub")

# kind -> (subscribe command, unsubscribe command, confirmation names)
_WIRE = {
    "channels": (b"SUBSCRIBE", b"UNSUBSCRIBE", (b"subscribe", b"unsubscribe")),
    "patterns": (b"PSUBSCRIBE", b"PUNSUBSCRIBE", (b"psubscribe", b"punsubscribe")),
    "shard_channels": (b"SSUBSCRIBE", b"SUNSUBSCRIBE", (b"ssubscribe", b"sunsubscribe")),
}

Key = tuple[str, bytes]


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _Relay(AbcChannel):
    """Subscribed on one node pool; forwards to the caller's channel until retired."""

    __slots__ = ("key", "owner", "pool", "retired", "target")

    def __init__(
        self, owner: ClusterPubSub, key: Key, target: AbcChannel, pool: ConnectionsPool
    ) -> None:
        self.owner = owner
        self.key = key
        self.target = target
        self.pool = pool
        self.retired = False

    @property
    def name(self) -> bytes:
        return self.target.name

    @property
    def is_pattern(self) -> bool:
        return self.target.is_pattern

    @property
    def is_active(self) -> bool:
        return not self.retired

    def put_nowait(self, data: Any) -> None:
        if not self.retired:
            self.target.put_nowait(data)

    def close(self, exc: BaseException | None = None) -> None:
        if not self.retired:
            self.retired = True
            self.owner._lost(self, exc)


class ClusterPubSub:
    """The pub/sub side of a :class:`~clustermgr.cluster.ClusterPool`."""

    def __init__(self, cluster: ClusterPool) -> None:
        self._cluster = cluster
        self._desired: dict[str, dict[bytes, AbcChannel]] = {
            "channels": {}, "patterns": {}, "shard_channels": {},
        }
        self._relays: dict[Key, _Relay] = {}
        self._syncs: dict[Key, asyncio.Task[None]] = {}
        self._home: ConnectionsPool | None = None
        self._lost_at: dict[Key, float] = {}  # wall-clock time a subscription went away
        self._closed = False

    # -- views -------------------------------------------------------------

    @property
    def channels(self) -> Mapping[bytes, AbcChannel]:
        """Channels subscribed with SUBSCRIBE."""
        return MappingProxyType(self._desired["channels"])

    @property
    def patterns(self) -> Mapping[bytes, AbcChannel]:
        """Patterns subscribed with PSUBSCRIBE."""
        return MappingProxyType(self._desired["patterns"])

    @property
    def shard_channels(self) -> Mapping[bytes, AbcChannel]:
        """Channels subscribed with SSUBSCRIBE."""
        return MappingProxyType(self._desired["shard_channels"])

    @property
    def count(self) -> int:
        """Number of desired subscriptions."""
        return sum(len(r) for r in self._desired.values())

    # -- commands ----------------------------------------------------------

    def execute(self, command: bytes | str, channels: tuple[Any, ...]) -> Awaitable[Any]:
        """(Un)subscribe ``channels``; the awaitable gives the confirmations."""
        request = parse_pubsub(command, channels, self._desired)
        kind = request.registry
        registry = self._desired[kind]
        names, targets = request.names, request.channels
        if request.subscribing:
            for target in targets:
                registry[target.name] = target
            tasks = [self._schedule((kind, t.name)) for t in targets]
            return self._cluster._spawn(self._confirm(kind, names, tasks))
        for key in names or list(registry):
            channel = registry.pop(key, None)
            self._forget((kind, key))
            if channel is not None:
                channel.close()
        return self._cluster._spawn(self._confirm(kind, names, [], unsubscribe=True))

    async def _confirm(
        self, kind: str, names: list[bytes], tasks: list[asyncio.Task[None]],
        unsubscribe: bool = False,
    ) -> list[list[Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._cluster._retry_timeout
        while tasks and not self._closed:
            # A sync may be restarted (new slot map) while we wait: follow the new one.
            await asyncio.wait(tasks)
            tasks = [
                task
                for name in names
                if (task := self._syncs.get((kind, name))) is not None and not task.done()
            ]
            if tasks and loop.time() >= deadline:
                raise TimeoutError(f"subscribing {names!r} did not finish in time")
        word = _WIRE[kind][2][1 if unsubscribe else 0]
        count = self.count
        return [[word, name, count] for name in names]

    # -- desired vs actual -------------------------------------------------

    def _owner(self, key: Key) -> ConnectionsPool | None:
        kind, name = key
        if kind == "shard_channels":
            return self._cluster._routes[key_slot(name)]
        home = self._home
        masters = self._cluster._masters
        if home is None or home.closed or home not in masters:
            self._home = home = masters[0] if masters else None
        return home

    def reconcile(self) -> None:
        """Move every subscription whose owner changed (called on each new slot map)."""
        if self._closed:
            return
        for kind, registry in self._desired.items():
            for name in registry:
                key = (kind, name)
                relay = self._relays.get(key)
                owner = self._owner(key)
                if relay is None or relay.pool is not owner or relay.pool.closed:
                    running = self._syncs.get(key)
                    if running is not None and relay is None:
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
        task = self._cluster._spawn(self._sync(key, refresh_first))
        self._syncs[key] = task
        task.add_done_callback(functools.partial(self._sync_done, key))
        return task

    def _sync_done(self, key: Key, task: asyncio.Task[None]) -> None:
        if self._syncs.get(key) is task:
            del self._syncs[key]
        _consume(task)

    async def _sync(self, key: Key, refresh_first: bool) -> None:
        cluster = self._cluster
        kind, name = key
        attempt = 0
        if refresh_first:
            await cluster._refresh.refresh("pubsub moved", cluster._options.node_timeout)
        while not self._closed:
            target = self._desired[kind].get(name)
            if target is None:
                return
            pool = self._owner(key)
            relay = self._relays.get(key)
            if pool is not None and relay is not None and relay.pool is pool and not (
                relay.retired or pool.closed
            ):
                return
            if relay is not None:
                self._lost_at.setdefault(key, time.time())
                self._drop(relay)
            if pool is None or pool.closed:
                await cluster._refresh.refresh("pubsub owner", cluster._options.node_timeout)
            else:
                relay = self._relays[key] = _Relay(self, key, target, pool)
                try:
                    await pool.execute_pubsub(_WIRE[kind][0], relay)
                    lost_at = self._lost_at.pop(key, None)
                    if attempt or lost_at is not None:
                        logger.info("resubscribed %s %r on %s", kind, name, pool.address)
                    if lost_at is not None:
                        self._restored(key, pool, lost_at)
                    continue  # check again: the owner may have changed meanwhile
                except asyncio.CancelledError:
                    self._drop(relay)
                    raise
                except (RedisError, OSError) as exc:  # MOVED, CLUSTERDOWN, pool closed...
                    self._drop(relay)
                    if isinstance(exc, (PoolClosedError, ConnectionClosedError)):
                        cluster._refresh.trigger("pubsub connection")
                    else:
                        await cluster._refresh.refresh(
                            "pubsub redirect", cluster._options.node_timeout
                        )
            attempt += 1
            await asyncio.sleep(min(1.0, 0.02 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1))

    def _restored(self, key: Key, pool: ConnectionsPool, lost_at: float) -> None:
        pool.counters.resubscribes += 1
        events = self._cluster.events
        if events.active:
            names = {kind: (key[1],) if kind == key[0] else () for kind in _WIRE}
            events.emit(PubSubResubscribed(
                pool.address, names["channels"], names["patterns"], names["shard_channels"],
                lost_at=lost_at, gap_ms=(time.time() - lost_at) * 1000,
            ))

    def _drop(self, relay: _Relay) -> None:
        """Retire a relay and unsubscribe it from its node pool."""
        relay.retired = True
        if self._relays.get(relay.key) is relay:
            del self._relays[relay.key]
        pool = relay.pool
        if pool.closed:
            return
        kind, name = relay.key
        # Synchronous registration: the pool drops it from its desired state now.
        with contextlib.suppress(RedisError, OSError):
            pending = pool.execute_pubsub(_WIRE[kind][1], name)
            pending.add_done_callback(_consume)  # type: ignore[attr-defined]

    def _forget(self, key: Key) -> None:
        running = self._syncs.pop(key, None)
        if running is not None:
            running.cancel()
        relay = self._relays.get(key)
        if relay is not None:
            self._drop(relay)

    def _lost(self, relay: _Relay, exc: BaseException | None) -> None:
        """A relay was closed under us (slot moved, node pool closed)."""
        if self._relays.get(relay.key) is relay:
            del self._relays[relay.key]
        if self._closed or relay.key[1] not in self._desired[relay.key[0]]:
            return
        reason = str(exc or "unsubscribed by the server")
        logger.info("%s %r lost on %s (%s); resubscribing", relay.key[0], relay.key[1],
                    relay.pool.address, reason)
        lost_at = self._lost_at.setdefault(relay.key, time.time())
        events = self._cluster.events
        if events.active:
            names = {kind: (relay.key[1],) if kind == relay.key[0] else () for kind in _WIRE}
            events.emit(PubSubDisconnected(
                relay.pool.address, names["channels"], names["patterns"], names["shard_channels"],
                reason=reason, at=lost_at,
            ))
        self._schedule(relay.key, restart=True, refresh_first=True)

    def close(self) -> None:
        """Close every channel; the node pools are closed by the cluster pool."""
        self._closed = True
        for relay in self._relays.values():
            relay.retired = True
        self._relays.clear()
        for task in self._syncs.values():
            task.cancel()
        self._syncs.clear()
        for registry in self._desired.values():
            for channel in registry.values():
                channel.close()
            registry.clear()
