"""The subscription state machine: desired pub/sub state, reconciled against a connection.

:class:`SubscriptionSet` is the *desired* state: per kind (channels,
patterns, shard channels) the caller's channel for each name. Every pool
keeps its subscriptions in one. :class:`PubSubLink` reconciles one set against
one dedicated, reconnecting connection, whose own registries are the *actual*
state (what the server confirmed). A name is

- ``subscribing`` while desired but not (yet) confirmed on the connection,
- ``subscribed`` once desired and confirmed,
- ``unsubscribing`` while confirmed but no longer desired.

Operations issued while the connection is down wait for it: a SUBSCRIBE is
sent once it is back (a refusal — NOPERM, NOAUTH, MOVED — fails the caller at
once and drops what it asked for), an UNSUBSCRIBE ends its channels at once
(the server has nothing left to undo). An UNSUBSCRIBE also ends at once the
channels whose SUBSCRIBE was not confirmed yet; a confirmed one ends with the
server's confirmation (messages sent before it are delivered).

Cancelling the awaitable of an operation only stops that caller waiting
("I stop waiting", not "undo"): the desired state stays as the call set it.
A cancelled SUBSCRIBE still happens (or, refused, still drops and ends its
channels); an established name subscribed again and cancelled stays
subscribed. To undo a SUBSCRIBE, UNSUBSCRIBE. :meth:`PubSubLink.close` fails every
pending operation with :class:`~clustermgr.errors.PoolClosedError` and ends
every channel. :class:`Relay` is the one way a routing pool (cluster,
sentinel) subscribes a caller's channel on a node pool it may later replace.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from .abc import AbcChannel
from .backoff import Backoff
from .connection import RedisConnection
from .errors import (
    AuthError,
    ConnectionClosedError,
    NoPermissionError,
    PoolClosedError,
    RedirectError,
    RedisError,
    ReplyError,
)
from .pubsub import PUBSUB_COMMANDS, SUBSCRIBE_COMMANDS, ChannelMap, PubSubRequest, parse_pubsub
from .tasks import consume

__all__ = ["KINDS", "REFUSED", "PubSubLink", "Relay", "SubscriptionSet"]

logger = logging.getLogger("clustermgr.pubsub")

#: The three kinds of subscription, as registry names.
KINDS: tuple[str, ...] = tuple(SUBSCRIBE_COMMANDS)
#: kind -> the command that unsubscribes it.
UNSUBSCRIBE_COMMANDS: dict[str, bytes] = {
    kind: command for command, (kind, subscribing) in PUBSUB_COMMANDS.items() if not subscribing
}
#: Refusals that no retry can cure: the callers are failed and the names dropped.
REFUSED = (AuthError, NoPermissionError)
# On resubscribing, a redirect too: the owner moves the channel to the new node.
_REFUSED_RESTORE = (*REFUSED, RedirectError)


def confirmations(command: bytes, names: Sequence[bytes], count: int) -> list[list[Any]]:
    """The confirmations the server would send for ``command names`` (one per name)."""
    word = command.lower()
    return [[word, name, count] for name in names] or [[word, None, count]]


class SubscriptionSet:
    """Desired subscriptions: per kind, name -> the caller's channel."""

    __slots__ = ("_by_kind", "_views")

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[bytes, AbcChannel]] = {kind: {} for kind in KINDS}
        self._views = {kind: ChannelMap(registry) for kind, registry in self._by_kind.items()}

    @property
    def registries(self) -> Mapping[str, Mapping[bytes, AbcChannel]]:
        """Every kind's registry, for :func:`~clustermgr.pubsub.parse_pubsub`."""
        return self._by_kind

    def view(self, kind: str) -> ChannelMap:
        """Read-only view of one kind (str keys work too)."""
        return self._views[kind]

    @property
    def channels(self) -> ChannelMap:
        """Channels (SUBSCRIBE)."""
        return self._views["channels"]

    @property
    def patterns(self) -> ChannelMap:
        """Patterns (PSUBSCRIBE)."""
        return self._views["patterns"]

    @property
    def shard_channels(self) -> ChannelMap:
        """Shard channels (SSUBSCRIBE)."""
        return self._views["shard_channels"]

    @property
    def count(self) -> int:
        """Number of desired subscriptions."""
        return sum(len(registry) for registry in self._by_kind.values())

    def parse(self, command: Any, items: tuple[Any, ...]) -> PubSubRequest:
        """Check an (un)subscribe call against this set (see ``parse_pubsub``)."""
        return parse_pubsub(command, items, self._by_kind)

    def get(self, kind: str, name: bytes) -> AbcChannel | None:
        """The desired channel of ``kind`` called ``name``, if any."""
        return self._by_kind[kind].get(name)

    def add(self, kind: str, channels: Sequence[AbcChannel]) -> None:
        """Desire ``channels`` (a name given again is bound to its newest channel)."""
        registry = self._by_kind[kind]
        for channel in channels:
            registry[channel.name] = channel

    def remove(self, kind: str, names: Sequence[bytes]) -> list[AbcChannel]:
        """Stop desiring ``names`` (every name of ``kind`` if empty); returns the channels."""
        registry = self._by_kind[kind]
        removed = []
        for name in names or list(registry):
            channel = registry.pop(name, None)
            if channel is not None:
                removed.append(channel)
        return removed

    def discard(self, kind: str, channel: AbcChannel) -> bool:
        """Stop desiring ``channel`` if it is still the one bound to its name."""
        registry = self._by_kind[kind]
        if registry.get(channel.name) is channel:
            del registry[channel.name]
            return True
        return False

    def items(self) -> Iterator[tuple[str, bytes, AbcChannel]]:
        """Every desired ``(kind, name, channel)``."""
        for kind, registry in self._by_kind.items():
            for name, channel in list(registry.items()):
                yield kind, name, channel

    def names(self, kind: str) -> tuple[bytes, ...]:
        """The desired names of ``kind``."""
        return tuple(self._by_kind[kind])

    def close_all(self, exc: BaseException | None = None) -> None:
        """End every desired channel and forget them."""
        for registry in self._by_kind.values():
            channels = list(registry.values())
            registry.clear()
            for channel in channels:
                channel.close(exc)


class SubscriptionViews:
    """The AbcPool pub/sub views of a pool, read from its one :class:`SubscriptionSet`."""

    @property
    def _subscription_set(self) -> SubscriptionSet:
        raise NotImplementedError

    @property
    def pubsub_channels(self) -> ChannelMap:
        """Channels subscribed through this pool (kept across reconnects; str keys work)."""
        return self._subscription_set.channels

    @property
    def pubsub_patterns(self) -> ChannelMap:
        """Patterns subscribed through this pool (kept across reconnects; str keys work)."""
        return self._subscription_set.patterns

    @property
    def pubsub_shard_channels(self) -> ChannelMap:
        """Sharded channels (SSUBSCRIBE) subscribed through this pool."""
        return self._subscription_set.shard_channels

    @property
    def in_pubsub(self) -> int:
        """Number of subscriptions held by the pool."""
        return self._subscription_set.count


class Relay(AbcChannel):
    """Stands for a caller's channel inside a node pool that may be replaced.

    Messages go to ``target``. When the node pool closes it (the pool is
    closed, the server unsubscribed it), the caller's channel stays open and
    ``on_close(relay, exc)`` is told, so the owner can subscribe it elsewhere.
    """

    __slots__ = ("_on_close", "retired", "target")

    def __init__(
        self,
        target: AbcChannel,
        on_close: Callable[[Relay, BaseException | None], None] | None = None,
    ) -> None:
        self.target = target
        self.retired = False
        self._on_close = on_close

    @property
    def name(self) -> bytes:
        return self.target.name

    @property
    def is_pattern(self) -> bool:
        return self.target.is_pattern

    @property
    def is_active(self) -> bool:
        return not self.retired and self.target.is_active

    def put_nowait(self, data: Any) -> None:
        if not self.retired:
            self.target.put_nowait(data)

    def close(self, exc: BaseException | None = None) -> None:
        if not self.retired:
            self.retired = True
            if self._on_close is not None:
                self._on_close(self, exc)

    def __repr__(self) -> str:
        return f"<Relay {self.target!r}{' retired' if self.retired else ''}>"


class _Op(NamedTuple):
    """A caller's (un)subscribe, resolved by the connection or by the link."""

    future: asyncio.Future[Any]
    request: PubSubRequest


def _resolve(
    future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None
) -> None:
    """Resolve ``future`` unless its caller gave up (cancelled it) already."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)



class PubSubLink:
    """A :class:`SubscriptionSet` kept on one dedicated, reconnecting connection.

    ``connect()`` opens a connection (the owner's options, counters and
    on-connect checks); ``spawn(coro)`` runs the reconnect task in the owner's
    task set. ``take()``, if given, hands over an open, idle connection of the
    owner's (or None): a SUBSCRIBE while the link has no connection and is not
    reconnecting is then written on it at once, as aioredis 1.x's pool did,
    instead of after a connect. ``on_lost(cause)`` and ``on_restored(gap_seconds)``
    tell the owner when the connection of an established subscription drops
    and comes back.
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[RedisConnection]],
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
        describe: str,
        take: Callable[[], RedisConnection | None] | None = None,
        reconnect_delay: tuple[float, float] = (0.05, 2.0),
        on_lost: Callable[[BaseException | None], None] | None = None,
        on_restored: Callable[[float], None] | None = None,
    ) -> None:
        self._connect = connect
        self._spawn = spawn
        self._take = take
        self._describe = describe
        self._backoff = Backoff(base=reconnect_delay[0], cap=reconnect_delay[1])
        self._on_lost = on_lost
        self._on_restored = on_restored
        self.subscriptions = SubscriptionSet()
        self._conn: RedisConnection | None = None
        self._queue: list[_Op] = []
        self._task: asyncio.Task[None] | None = None
        self._lost_at: float | None = None
        self._closed = False

    # -- state -----------------------------------------------------------------

    @property
    def connection(self) -> RedisConnection | None:
        """The established connection (subscriptions restored), or None."""
        return self._conn

    def state(self, kind: str, name: bytes | str) -> str | None:
        """``subscribing``, ``subscribed``, ``unsubscribing`` or None for ``name``."""
        key = name.encode() if isinstance(name, str) else name
        desired = self.subscriptions.get(kind, key)
        conn = self._conn
        actual = _registry(conn, kind).get(key) if conn is not None else None
        if desired is not None:
            return "subscribed" if actual is desired else "subscribing"
        return "unsubscribing" if actual is not None else None

    @property
    def pending(self) -> int:
        """Operations waiting for the connection."""
        return len(self._queue)

    # -- operations ------------------------------------------------------------

    def execute(self, command: bytes | str, channels: tuple[Any, ...]) -> Awaitable[Any]:
        """(Un)subscribe ``channels``; resolves to the server's confirmations.

        The desired state changes at once; the connection follows.
        """
        if self._closed:
            raise PoolClosedError(f"{self._describe} is closed")
        request = self.subscriptions.parse(command, channels)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        op = _Op(future, request)
        kind = request.registry
        if request.subscribing:
            self.subscriptions.add(kind, request.channels)
        else:
            removed = self.subscriptions.remove(kind, request.names)
            actual = _registry(self._conn, kind)
            for channel in removed:
                # Not confirmed on the server (or no connection): nothing to wait for.
                if actual.get(channel.name) is not channel:
                    channel.close()
            if self._conn is None:
                future.set_result(confirmations(
                    request.command, request.names or [c.name for c in removed],
                    self.subscriptions.count,
                ))
                return future
        conn = self._conn if self._conn is not None else self._take_idle()
        if conn is not None:
            self._send(conn, op)
        else:
            self._queue.append(op)
            self._ensure_connecting()
        return future

    def _take_idle(self) -> RedisConnection | None:
        """The owner's idle connection, established at once; None while reconnecting.

        Not reconnecting and no connection means nothing is subscribed on the
        server: there is nothing to restore on it.
        """
        if self._take is None or (self._task is not None and not self._task.done()):
            return None
        conn = self._take()
        if conn is not None:
            conn.on_pubsub_lost = self._lost
            conn.on_unsubscribed = self._server_unsubscribed
            self._established(conn, self._lost_at)
        return conn

    def _send(self, conn: RedisConnection, op: _Op) -> None:
        request = op.request
        kind = request.registry
        targets: list[Any]
        if request.subscribing:
            # Only what is still desired (an UNSUBSCRIBE may have come first).
            targets = [c for c in request.channels if self.subscriptions.get(kind, c.name) is c]
            if not targets:
                _resolve(op.future, confirmations(
                    request.command, request.names, self.subscriptions.count))
                return
        else:
            targets = list(request.names)
        try:
            inner = conn.execute_pubsub(request.command, *targets)
        except ConnectionClosedError:  # dropped in this very tick: wait for the next one
            self._queue.append(op)
            self._ensure_connecting()
            return
        inner.add_done_callback(functools.partial(self._settled, op, conn))

    def _settled(self, op: _Op, conn: RedisConnection, inner: asyncio.Future[Any]) -> None:
        # The state machine goes on even if the caller gave up (its future is done).
        future, request = op
        exc = inner.exception() if not inner.cancelled() else PoolClosedError("cancelled")
        if exc is None:
            _resolve(future, inner.result())
        elif self._closed:
            _resolve(future, error=PoolClosedError(f"{self._describe} was closed"))
        elif isinstance(exc, ConnectionClosedError):
            if request.subscribing:  # sent again when the connection is back
                if self._conn is not None and self._conn is not conn:
                    self._send(self._conn, op)
                else:
                    self._queue.append(op)
                    self._ensure_connecting()
            else:  # the connection that had them is gone
                _resolve(future, confirmations(
                    request.command, request.names, self.subscriptions.count))
        else:
            if isinstance(exc, ReplyError) and request.subscribing:
                self._refuse(request, conn, exc)
            _resolve(future, error=exc)

    def _refuse(
        self, request: PubSubRequest, conn: RedisConnection | None, exc: BaseException
    ) -> None:
        """The server refused a SUBSCRIBE: drop and end what it did not confirm."""
        kind = request.registry
        actual = _registry(conn, kind) if conn is not None else {}
        for channel in request.channels:
            if actual.get(channel.name) is not channel and self.subscriptions.discard(
                kind, channel
            ):
                channel.close(exc)

    # -- the connection --------------------------------------------------------

    def _ensure_connecting(self) -> None:
        if self._task is None or self._task.done():
            self._task = self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        attempt = 0
        lost_at = self._lost_at
        while not self._closed and (self.subscriptions.count or self._queue):
            try:
                conn = await self._connect()
            except REFUSED as exc:
                # Wrong credentials: the callers waiting hear it now.
                ops, self._queue = self._queue, []
                for op in ops:
                    self._refuse(op.request, None, exc)
                    if not op.future.done():
                        op.future.set_exception(exc)
                error: BaseException = exc
            except (RedisError, OSError) as exc:
                error = exc
            else:
                try:
                    await self._restore(conn)
                except (RedisError, OSError) as exc:
                    error = exc
                except BaseException:
                    await _discard(conn)
                    raise
                else:
                    self._established(conn, lost_at)
                    return
                await _discard(conn)
            if not (self.subscriptions.count or self._queue):
                break
            attempt += 1
            pause = self._backoff.delay(attempt)
            log = logger.warning if attempt == 1 or attempt % 20 == 0 else logger.debug
            log("pub/sub reconnect to %s failed (attempt %d): %s; retrying in %.2fs",
                self._describe, attempt, error, pause)
            await asyncio.sleep(pause)

    async def _restore(self, conn: RedisConnection) -> None:
        """Subscribe what was established before on a new connection."""
        conn.on_pubsub_lost = self._lost
        conn.on_unsubscribed = self._server_unsubscribed
        waiting = {(op.request.registry, c.name) for op in self._queue for c in op.request.channels}
        sent = []
        for kind in KINDS:
            channels = [
                channel for name, channel in self.subscriptions.registries[kind].items()
                if (kind, name) not in waiting
            ]
            if channels:
                request = PubSubRequest(SUBSCRIBE_COMMANDS[kind], kind, True,
                                        [c.name for c in channels], channels)
                sent.append((request, conn.execute_pubsub(request.command, *channels)))
        for request, future in sent:
            try:
                await future
            except _REFUSED_RESTORE as exc:  # no retry can cure it: those channels end
                logger.warning("%s refused resubscribing %d %s: %s", self._describe,
                               len(request.names), request.registry, exc)
                self._refuse(request, conn, exc)

    def _established(self, conn: RedisConnection, lost_at: float | None) -> None:
        self._conn = conn
        self._lost_at = None
        # Names unsubscribed while the connection was being restored.
        for kind in KINDS:
            extra = [n for n in _registry(conn, kind) if self.subscriptions.get(kind, n) is None]
            if extra:
                conn.execute_pubsub(UNSUBSCRIBE_COMMANDS[kind], *extra).add_done_callback(
                    consume)
        ops, self._queue = self._queue, []
        for op in ops:  # given up or not: what they asked for is still desired
            self._send(conn, op)
        if lost_at is not None and self._on_restored is not None:
            self._on_restored(asyncio.get_running_loop().time() - lost_at)

    def _lost(self, conn: RedisConnection, cause: BaseException | None) -> None:
        if conn is not self._conn:
            return  # a connection being restored: _reconnect sees its failure
        self._conn = None
        self._lost_at = asyncio.get_running_loop().time()
        for kind in KINDS:  # unsubscribing ones end with the connection
            for name, channel in list(_registry(conn, kind).items()):
                if self.subscriptions.get(kind, name) is not channel:
                    channel.close(cause)
        if self._closed or not (self.subscriptions.count or self._queue):
            return
        if self._on_lost is not None:
            self._on_lost(cause)
        self._ensure_connecting()

    def _server_unsubscribed(self, conn: RedisConnection, kind: bytes, channel: AbcChannel) -> None:
        """The server dropped a subscription on its own (a shard channel's slot moved)."""
        registry = PUBSUB_COMMANDS[kind.upper()][0]
        self.subscriptions.discard(registry, channel)
        channel.close()

    # -- close -----------------------------------------------------------------

    def close(self) -> None:
        """Fail every pending operation, end every channel, close the connection."""
        if self._closed:
            return
        self._closed = True
        error = PoolClosedError(f"{self._describe} was closed")
        ops, self._queue = self._queue, []
        for op in ops:
            if not op.future.done():
                op.future.set_exception(error)
        if self._task is not None:
            self._task.cancel()
        if self._conn is not None:
            self._conn.close()
        self.subscriptions.close_all()

    async def wait_closed(self) -> None:
        """Wait until the connection and the reconnect task have ended."""
        if self._conn is not None:
            await self._conn.wait_closed()
        if self._task is not None and self._task is not asyncio.current_task():
            await asyncio.gather(self._task, return_exceptions=True)


def _registry(conn: RedisConnection | None, kind: str) -> Mapping[bytes, AbcChannel]:
    if conn is None:
        return {}
    if kind == "channels":
        return conn.pubsub_channels
    if kind == "patterns":
        return conn.pubsub_patterns
    return conn.pubsub_shard_channels


async def _discard(conn: RedisConnection) -> None:
    conn.close()  # its hook is ours: the desired channels stay open
    await conn.wait_closed()
