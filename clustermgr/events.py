"""Typed events about what a pool sees: topology changes, redirects, failovers, pub/sub gaps.

Every pool exposes an :class:`EventBus` as ``pool.events``::

    pool.events.subscribe(print, TopologyChanged, FailoverDetected)

    async with pool.events.stream(PubSubResubscribed) as stream:
        async for event in stream:
            resync_since(event.lost_at)

Callbacks run synchronously where the pool notices the event (they must not
block; exceptions are logged and swallowed). A stream buffers events in a
bounded queue and, when its consumer falls behind, drops the oldest ones and
counts them in :attr:`EventStream.dropped`: emitting never waits. With no
subscriber, a pool pays one attribute check (``bus.active``) per event site.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, ClassVar

from .address import address_text

__all__ = [
    "Event",
    "EventBus",
    "EventStream",
    "FailoverDetected",
    "NodeDown",
    "NodeUp",
    "PoolExhausted",
    "PubSubDisconnected",
    "PubSubResubscribed",
    "Redirect",
    "RoleChange",
    "SlotMove",
    "TopologyChanged",
]

logger = logging.getLogger("clustermgr.events")

Address = tuple[str, int]
Callback = Callable[["Event"], Any]


@dataclass(frozen=True)
class Event:
    """Base of every event. ``at`` is the wall-clock time (``time.time()``) it was seen."""

    kind: ClassVar[str] = "event"
    at: float = field(default_factory=time.time, kw_only=True)

    def describe(self) -> str:
        """One human-readable line (without the timestamp)."""
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-friendly values (bytes decoded, tuples as lists)."""
        return {"kind": self.kind, **_jsonable(asdict(self))}

    def __str__(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.at))
        return f"{stamp}.{int(self.at * 1000) % 1000:03d} {self.describe()}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


@dataclass(frozen=True)
class SlotMove:
    """Slots ``first..last`` changed master from ``old`` to ``new`` (None: unowned)."""

    first: int
    last: int
    old: Address | None
    new: Address | None


@dataclass(frozen=True)
class RoleChange:
    """A node whose role changed between two topology views."""

    address: Address
    old: str
    new: str


@dataclass(frozen=True)
class TopologyChanged(Event):
    """A new cluster slot map was applied and differs from the previous one."""

    kind: ClassVar[str] = "topology_changed"
    epoch: int
    source: Address | None
    reasons: tuple[str, ...]
    moved: tuple[SlotMove, ...] = ()
    added: tuple[Address, ...] = ()
    removed: tuple[Address, ...] = ()
    roles_changed: tuple[RoleChange, ...] = ()

    @property
    def moved_slots(self) -> int:
        """Number of slots whose master changed."""
        return sum(m.last - m.first + 1 for m in self.moved)

    def describe(self) -> str:
        """One line: epoch, slots moved, nodes added/removed, role changes, why."""
        parts = [f"topology changed (epoch {self.epoch}, from {address_text(self.source)})"]
        if self.moved:
            parts.append(f"{self.moved_slots} slots moved")
        if self.added:
            parts.append("nodes added " + ",".join(address_text(a) for a in self.added))
        if self.removed:
            parts.append("nodes removed " + ",".join(address_text(a) for a in self.removed))
        for change in self.roles_changed:
            parts.append(f"{address_text(change.address)} {change.old}->{change.new}")
        return "; ".join(parts) + f" [{','.join(self.reasons)}]"


@dataclass(frozen=True)
class Redirect(Event):
    """A cluster node answered MOVED or ASK for ``slot``."""

    kind: ClassVar[str] = "redirect"
    redirect: str  # "MOVED" or "ASK"
    slot: int
    from_node: Address | None
    to_node: Address
    command: str = ""

    def describe(self) -> str:
        """One line: the redirect and the nodes."""
        return (f"{self.redirect} slot {self.slot} {address_text(self.from_node)} -> "
                f"{address_text(self.to_node)} ({self.command})")


@dataclass(frozen=True)
class FailoverDetected(Event):
    """A master was replaced. ``detected_by`` says how the pool learned of it."""

    kind: ClassVar[str] = "failover_detected"
    old_master: Address | None
    new_master: Address | None
    detected_by: str
    service: str | None = None

    def describe(self) -> str:
        """One line: old and new master and how it was seen."""
        who = f"{self.service!r} " if self.service else ""
        return (f"failover {who}{address_text(self.old_master)} -> {address_text(self.new_master)} "
                f"(detected by {self.detected_by})")


@dataclass(frozen=True)
class NodeDown(Event):
    """A node stopped answering (connection refused or lost, or a sentinel's +sdown)."""

    kind: ClassVar[str] = "node_down"
    address: Address | None
    reason: str = ""

    def describe(self) -> str:
        """One line: which node and why."""
        return f"node down {address_text(self.address)} ({self.reason})"


@dataclass(frozen=True)
class NodeUp(Event):
    """A node that was reported down answers again."""

    kind: ClassVar[str] = "node_up"
    address: Address | None
    reason: str = ""

    def describe(self) -> str:
        """One line: which node and how it was seen."""
        return f"node up {address_text(self.address)} ({self.reason})"


@dataclass(frozen=True)
class PoolExhausted(Event):
    """Every connection of a pool is taken and a caller has to wait in ``acquire``."""

    kind: ClassVar[str] = "pool_exhausted"
    address: Any
    waiting: int
    maxsize: int

    def describe(self) -> str:
        """One line: the pool and its queue."""
        return (f"pool {address_text(self.address)} exhausted: {self.waiting} waiting "
                f"(maxsize {self.maxsize})")


@dataclass(frozen=True)
class PubSubDisconnected(Event):
    """A pub/sub connection dropped: messages published from ``lost_at`` on may be missed."""

    kind: ClassVar[str] = "pubsub_disconnected"
    address: Any
    channels: tuple[bytes, ...]
    patterns: tuple[bytes, ...] = ()
    shard_channels: tuple[bytes, ...] = ()
    reason: str = ""

    @property
    def lost_at(self) -> float:
        """Wall-clock time the connection was found lost (same as ``at``)."""
        return self.at

    def describe(self) -> str:
        """One line: where, how many subscriptions, why."""
        count = len(self.channels) + len(self.patterns) + len(self.shard_channels)
        return (f"pub/sub {address_text(self.address)} disconnected ({self.reason}); "
                f"{count} subscriptions")


@dataclass(frozen=True)
class PubSubResubscribed(Event):
    """Subscriptions are back; messages published during the gap were not delivered."""

    kind: ClassVar[str] = "pubsub_resubscribed"
    address: Any
    channels: tuple[bytes, ...]
    patterns: tuple[bytes, ...] = ()
    shard_channels: tuple[bytes, ...] = ()
    lost_at: float | None = None  # wall-clock time; None if unknown (subscription moved)
    gap_ms: float = 0.0

    @property
    def restored_at(self) -> float:
        """Wall-clock time the subscriptions were confirmed (same as ``at``)."""
        return self.at

    def describe(self) -> str:
        """One line: where, how many subscriptions, the gap."""
        count = len(self.channels) + len(self.patterns) + len(self.shard_channels)
        return (f"pub/sub {address_text(self.address)} resubscribed {count} subscriptions "
                f"after {self.gap_ms:.0f} ms")


class EventStream:
    """An async iterator over a bus's events, buffered in a bounded queue.

    When the queue is full the oldest event is dropped and :attr:`dropped`
    grows. Use ``async with bus.stream() as s: async for ev in s: ...`` or
    call :meth:`close`; a stream that is garbage-collected unsubscribes itself.
    """

    def __init__(self, bus: EventBus, types: tuple[type[Event], ...], maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize!r}")
        self._bus = bus
        self._types = types
        self._queue: deque[Event] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        #: Events dropped because the consumer was too slow.
        self.dropped = 0

    def _put(self, event: Event) -> None:
        if self._types and not isinstance(event, self._types):
            return
        if len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Event | None:
        """The next buffered event, or None."""
        return self._queue.popleft() if self._queue else None

    async def get(self) -> Event:
        """Wait for the next event (raises StopAsyncIteration once closed and drained)."""
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        """Unsubscribe; iteration ends once the buffered events are consumed."""
        self._closed = True
        self._bus._streams.discard(self)
        self._bus._update()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Events buffered and not yet consumed."""
        return len(self._queue)


class EventBus:
    """Where a pool publishes its events; subscribe with callbacks or streams.

    ``active`` is True while anyone listens: emitters check it before even
    building an event.
    """

    def __init__(self) -> None:
        self._callbacks: list[tuple[Callback, tuple[type[Event], ...]]] = []
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()
        #: True while a callback or a stream is subscribed (checked on the data path).
        self.active = False

    def subscribe(self, callback: Callback, *types: type[Event]) -> Callback:
        """Call ``callback(event)`` for each event (of ``types`` only, if given).

        Returns ``callback`` so it can be used as a decorator.
        """
        self._callbacks.append((callback, types))
        self.active = True
        return callback

    def unsubscribe(self, callback: Callback) -> None:
        """Stop calling ``callback`` (every subscription of it)."""
        self._callbacks = [(cb, t) for cb, t in self._callbacks if cb != callback]
        self._update()

    def stream(self, *types: type[Event], maxsize: int = 1000) -> EventStream:
        """A new :class:`EventStream` of events (of ``types`` only, if given)."""
        stream = EventStream(self, types, maxsize)
        self._streams.add(stream)
        self.active = True
        return stream

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber now; never blocks, never raises."""
        for callback, types in list(self._callbacks):
            if types and not isinstance(event, types):
                continue
            try:
                callback(event)
            except Exception:
                logger.exception("event callback %r failed on %s", callback, event.kind)
        for stream in list(self._streams):
            stream._put(event)
        self._update()

    def _update(self) -> None:
        self.active = bool(self._callbacks) or len(self._streams) > 0

    def __repr__(self) -> str:
        return f"<EventBus callbacks={len(self._callbacks)} streams={len(self._streams)}>"
