"""One connection to one Redis server.

``execute()`` writes the command and returns a future at once; replies are
matched to waiting futures in FIFO order, so any number of commands can be in
flight on one socket. Commands issued in the same event-loop tick leave in a
single ``write``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ._timeout import timeout as _timeout
from .abc import AbcChannel, AbcConnection
from .address import ServerAddress, check_db, parse_address
from .errors import (
    ConnectError,
    ConnectionClosedError,
    ConnectionForcedCloseError,
    ProtocolError,
    RedisError,
    ReplyError,
    TimeoutError,
)
from .execreply import ExecCodecs
from .handback import ConnectionState
from .options import check_class, check_options
from .protocol import (
    BLOCKING_COMMANDS,
    case_variants,
    decode,
    encode_command,
    is_blocking,
    lookup_command,
    new_reader,
)
from .pubsub import PUBSUB_COMMANDS, ChannelMap, parse_pubsub
from .stats import Counters
from .tlsopts import resolve_tls
from .tracking import StateTracker

__all__ = ["BATCH_CHECKED_NAMES", "RedisConnection", "create_connection", "refuse_in_batch"]

logger = logging.getLogger("clustermgr.connection")

_NOT_SET: Any = object()

# Server confirmation kind -> (registry, subscribed?), derived from the command table.
_CONFIRMATIONS = {command.lower(): entry for command, entry in PUBSUB_COMMANDS.items()}
_MESSAGES = frozenset({b"message", b"pmessage", b"smessage"})
_PUBSUB_EVENTS = _MESSAGES | frozenset(_CONFIRMATIONS)
_PING = case_variants("PING")


# Commands the connection must look at (state, pub/sub, blocking); everything
# else passes straight through. Looked up by the command exactly as the caller
# spelled it, falling back to upper-casing only for mixed case.
_STATE = case_variants(
    "SELECT", "MULTI", "EXEC", "DISCARD", "QUIT", "WATCH", "UNWATCH", "AUTH", "CLIENT",
    "READONLY", "READWRITE", "RESET",
)
_SPECIAL_PUBSUB = case_variants(
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
)
_SPECIAL = {
    **_STATE,
    **_SPECIAL_PUBSUB,
    **BLOCKING_COMMANDS,
}
# Looked at in execute_batch: a batch has no per-command state hooks, so
# state commands are refused there (CLIENT only for REPLY OFF/SKIP).
_BATCH_CHECKED = {
    name: canonical for name, canonical in _SPECIAL.items() if name not in BLOCKING_COMMANDS
}
_UNTRACKABLE_REPLY_MODES = frozenset({b"OFF", b"SKIP"})
# What a subscribed connection still runs (the server refuses the rest).
_SUBSCRIBED_OK = {**_SPECIAL_PUBSUB, **case_variants("PING", "QUIT")}
# Sent inside MULTI but not queued by the server (it refuses them at once).
_NOT_QUEUED = frozenset({b"MULTI", b"WATCH", b"QUIT"})


def _refuse_untracked_replies(command: Any, args: Sequence[Any]) -> None:
    """CLIENT REPLY OFF/SKIP would make replies and commands stop matching up."""
    if (
        len(args) >= 2
        and _upper(args[0]) == b"REPLY"
        and _upper(args[1]) in _UNTRACKABLE_REPLY_MODES
    ):
        raise TypeError(
            "CLIENT REPLY OFF/SKIP is not supported: replies are matched to commands in order"
        )


#: Lower-case names (``CommandInfo.name``) of the commands :func:`refuse_in_batch` looks at.
BATCH_CHECKED_NAMES = frozenset(name.decode().lower() for name in _STATE.values())


def refuse_in_batch(command: Any, args: Sequence[Any]) -> None:
    """Raise TypeError if a batch cannot carry ``command``: it changes connection
    state (SELECT, WATCH, MULTI, ...; CLIENT only for REPLY OFF/SKIP)."""
    checked = lookup_command(_STATE, command)
    if checked is not None:
        _refuse_checked(checked, command, args)


def _refuse_checked(checked: bytes, command: Any, args: Sequence[Any]) -> None:
    """A batch command found in a state table: refused, but CLIENT only for REPLY OFF/SKIP."""
    if checked != b"CLIENT":
        raise TypeError(f"execute_batch: {command!r} changes connection state; use execute()")
    _refuse_untracked_replies(command, args)


def _codec(encoding: str | ExecCodecs | None) -> str | None:
    """The codec a retry of the command would ask for (EXEC's default for its codecs)."""
    return encoding.default if isinstance(encoding, ExecCodecs) else encoding


def _special(command: Any) -> bytes | None:
    return lookup_command(_SPECIAL, command)


def _upper(value: Any) -> bytes:
    if isinstance(value, str):
        return value.upper().encode()
    return bytes(value).upper() if isinstance(value, (bytes, bytearray, memoryview)) else b""


PubSubLostHook = Callable[["RedisConnection", BaseException | None], None]
UnsubscribedHook = Callable[["RedisConnection", bytes, AbcChannel], None]
ErrorHook = Callable[
    [asyncio.Future[Any], BaseException, Any, tuple[Any, ...], "str | None"], bool
]
"""``on_error(future, error, command, args, encoding) -> handled``.

Called instead of failing ``future`` when its command gets an error reply or
its connection is lost. Returning True means the hook took the future over
(it will resolve it, e.g. after a retry elsewhere); False lets the error
through. Routing pools use it to follow MOVED/ASK without a second future."""


class _Batch:
    """Replies of a batch sent with :meth:`RedisConnection.execute_batch`.

    One future for the whole batch; each reply lands in its slot (error
    replies as exception instances) and the future resolves with the list.
    """

    __slots__ = ("blocking", "future", "index", "replies")

    def __init__(
        self, future: asyncio.Future[list[Any]], size: int, blocking: _Blocking | None
    ) -> None:
        self.future = future
        self.replies: list[Any] = [None] * size
        self.index = 0
        self.blocking = blocking

    def add(self, reply: Any, encoding: str | None) -> None:
        if encoding is not None and not isinstance(reply, ReplyError):
            try:
                reply = decode(reply, encoding)
            except Exception as exc:  # a bad codec fails this reply only
                reply = exc
        self.replies[self.index] = reply
        self.index += 1
        if self.index == len(self.replies):
            if self.blocking is not None:
                self.blocking(reply)
            if not self.future.done():
                self.future.set_result(self.replies)


class _Blocking:
    """A pending blocking command (or batch holding one).

    If its caller gives up (the future is cancelled) before the reply, the
    connection is closed: the server then unblocks the command without
    serving it, and nothing queues behind it.
    """

    __slots__ = ("command", "conn", "pending")

    def __init__(self, conn: RedisConnection, command: Any) -> None:
        self.conn = conn
        self.command = command
        self.pending = True
        conn._blocking += 1

    def __call__(self, reply: Any) -> None:
        if self.pending:
            self.pending = False
            self.conn._blocking -= 1

    def given_up(self, future: asyncio.Future[Any]) -> None:
        conn = self.conn
        if future.cancelled() and self.pending and not conn._closing:
            if conn._reply_waiting():
                logger.warning(
                    "%s: %r was given up with a reply already arriving: the server may "
                    "have served it; the reply is dropped", conn._address_text, self.command,
                )
            logger.debug("closing %r: its caller gave up on %r", conn, self.command)
            conn.close()


class _PubSubWait:
    """A pending (un)subscribe command waiting for its confirmations."""

    __slots__ = ("future", "kind", "pending", "remaining", "replies")

    def __init__(
        self,
        future: asyncio.Future[Any],
        kind: bytes,
        pending: dict[bytes, AbcChannel],
        remaining: int | None,
    ) -> None:
        self.future = future
        self.kind = kind
        self.pending = pending
        self.remaining = remaining  # None: "all", for UNSUBSCRIBE without names
        self.replies: list[Any] = []


class _Protocol(asyncio.Protocol):
    def __init__(self, conn: RedisConnection) -> None:
        self.conn = conn
        # Bind straight to the connection: one call per chunk, no indirection.
        self.data_received = conn._on_data  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn._on_lost(exc)

    def eof_received(self) -> bool | None:
        return None


class RedisConnection(AbcConnection):
    """A connection to one Redis server (see :func:`create_connection`)."""

    def __init__(
        self,
        address: ServerAddress,
        *,
        encoding: str | None = None,
        parser: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        read_timeout: float | None = None,
    ) -> None:
        check_options(read_timeout=read_timeout)
        self._address = address
        self._encoding = encoding
        self._loop = loop or asyncio.get_running_loop()
        target = address.target
        self._reader = new_reader(parser, host=target[0] if isinstance(target, tuple) else None)
        self._transport: asyncio.Transport | None = None
        # (future, encoding, state hook, error hook, command, args) per reply awaited.
        self._waiters: deque[
            tuple[
                asyncio.Future[Any], str | ExecCodecs | None, Any, ErrorHook | None, Any,
                tuple[Any, ...],
            ]
        ] = deque()
        self._buffer: list[bytes] = []
        self._unflushed = 0
        self._flush_handle: asyncio.Handle | None = None
        self._tracked = StateTracker()
        self._blocking = 0  # blocking commands awaiting their reply
        # Between MULTI and EXEC/DISCARD: each queued command's codec, for its EXEC slot.
        self._multi: ExecCodecs | None = None
        self._closing = False
        self._close_error: BaseException | None = None
        self._closed_future: asyncio.Future[None] = self._loop.create_future()
        self._channels: dict[bytes, AbcChannel] = {}
        self._patterns: dict[bytes, AbcChannel] = {}
        self._shard_channels: dict[bytes, AbcChannel] = {}
        self._pubsub_pending = 0
        self._subscribed = False  # any channel, pattern or shard channel confirmed
        # Stall detection (read_timeout): when replies are awaited and nothing
        # arrives for read_timeout seconds, the connection is aborted.
        self._read_timeout = read_timeout
        self._progress_at = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        #: Called when the connection ends (dropped or closed). When set, its
        #: channels are left open: the owner decides which end.
        self.on_pubsub_lost: PubSubLostHook | None = None
        #: Called when the server unsubscribes a channel on its own (sharded
        #: channel whose slot moved). When unset the channel is closed.
        self.on_unsubscribed: UnsubscribedHook | None = None
        #: Commands sent and errors seen (a pool replaces it with its node's counters).
        self.stats = Counters()

    # -- plumbing ---------------------------------------------------------

    def _attach(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        if self._read_timeout is not None:
            self._watchdog = self._loop.call_later(self._watch_interval, self._check_stall)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._buffer and self._transport is not None:
            data = b"".join(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
            self._buffer.clear()
            self.stats.commands += self._unflushed  # once per write, not per command
            self._unflushed = 0
            self._transport.write(data)

    def _send(self, data: bytes) -> None:
        if self._flush_handle is None and len(self._waiters) == 1 and self._transport is not None:
            # An idle connection: send at once (a lone caller saves a loop turn);
            # commands that follow in this tick are coalesced into one write.
            self.stats.commands += 1
            self._transport.write(data)
            return
        self._buffer.append(data)
        self._unflushed += 1
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    @property
    def _watch_interval(self) -> float:
        assert self._read_timeout is not None
        return min(self._read_timeout / 4, 1.0)

    def _check_stall(self) -> None:
        self._watchdog = None
        if self._closing or self._read_timeout is None:
            return
        if (
            self._waiters
            and not self._blocking
            and not self._unflushed
            and self._loop.time() - self._progress_at > self._read_timeout
        ):
            self._abort(TimeoutError(
                f"no reply within read_timeout={self._read_timeout}s", may_have_executed=True
            ))
            return
        self._watchdog = self._loop.call_later(self._watch_interval, self._check_stall)

    def _on_data(self, data: bytes) -> None:
        if self._read_timeout is not None:
            self._progress_at = self._loop.time()
        reader = self._reader
        reader.feed(data)
        waiters = self._waiters
        while True:
            try:
                obj = reader.gets()
            except ProtocolError as exc:
                logger.error("protocol error from %s: %s", self._address_text, exc)
                self._abort(exc)
                return
            if obj is False:
                return
            if type(obj) is list and obj and (
                # Pushes come only once subscribed; before that, an array is the reply
                # of the waiter at the head (a confirmation if it is an (un)subscribe).
                self._subscribed or (waiters and type(waiters[0][2]) is _PubSubWait)
            ):
                if obj[0] in _PUBSUB_EVENTS:
                    self._on_pubsub_event(obj)
                    continue
                if (
                    obj[0] == b"pong" and len(obj) == 2 and waiters
                    and lookup_command(_PING, waiters[0][4]) is not None
                ):
                    # A subscribed PING answers as unsubscribed (and as aioredis does).
                    obj = obj[1] if waiters[0][5] else b"PONG"
            if not waiters:
                self._abort(ProtocolError(f"unexpected reply from {self._address_text}: {obj!r}"))
                return
            future, encoding, hook, on_error, command, args = waiters.popleft()
            if hook is not None:
                kind = type(hook)
                if kind is _Batch:
                    hook.add(obj, encoding)
                    continue
                if kind is _PubSubWait:  # the (un)subscribe command was refused
                    self._pubsub_pending -= 1
                else:  # state is tracked from the reply, even if nobody awaits it
                    hook(obj)
            if future.done():  # cancelled by its caller; the reply is dropped
                if type(hook) is _Blocking and obj is not None and not isinstance(obj, ReplyError):
                    logger.warning(
                        "%s: the server served %r just as its caller gave up; reply dropped",
                        self._address_text, command,
                    )
                continue
            if isinstance(obj, ReplyError):
                self.stats.error(type(obj).__name__)
                if on_error is None or not on_error(future, obj, command, args, _codec(encoding)):
                    future.set_exception(obj)
                continue
            if encoding is not None:
                try:
                    if isinstance(encoding, str):
                        obj = decode(obj, encoding)
                    else:  # EXEC in MULTI: a codec per slot
                        obj = encoding.apply(obj)
                except Exception as exc:  # a bad codec fails this command only
                    future.set_exception(exc)
                    continue
            future.set_result(obj)

    def _on_lost(self, exc: BaseException | None) -> None:
        forced = self._closing
        self._closing = True
        if self._transport is not None and not self._transport.is_closing():
            # Python 3.10's SSL transport stays "open" after connection_lost (a
            # ResourceWarning when collected) unless it is closed explicitly.
            self._transport.close()
        self._transport = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        cause = self._close_error or exc
        if forced and self._close_error is None:
            message = f"connection to {self._address_text} was closed"
        else:
            message = f"connection to {self._address_text} lost"
            if cause is not None:
                message += f": {cause}"
        # Waiters whose bytes never left our buffer cannot have run.
        written = len(self._waiters) - self._unflushed
        error_cls = ConnectionForcedCloseError if forced else ConnectionClosedError
        if not forced:
            self.stats.disconnects += 1
            if self._waiters:
                self.stats.error(error_cls.__name__, len(self._waiters))
        for index, (future, enc, hook, on_error, command, args) in enumerate(self._waiters):
            target = hook.future if isinstance(hook, _PubSubWait) else future
            if not target.done():
                error = error_cls(message, may_have_executed=index < written)
                error.__cause__ = cause
                if on_error is not None and on_error(future, error, command, args, _codec(enc)):
                    continue
                target.set_exception(error)
        self._waiters.clear()
        self._buffer.clear()
        self._unflushed = 0
        self._pubsub_pending = 0
        self._blocking = 0
        self._release_channels(cause, forced)
        if not self._closed_future.done():
            self._closed_future.set_result(None)
        if not forced:
            (logger.warning if self._close_error is not None else logger.info)("%s", message)

    def _release_channels(self, cause: BaseException | None, forced: bool) -> None:
        if self.on_pubsub_lost is not None:
            # The owner decides which channels end (closed by us or lost alike).
            self.on_pubsub_lost(self, cause)
        else:
            for registry in (self._channels, self._patterns, self._shard_channels):
                for channel in registry.values():
                    channel.close(cause if not forced else None)
        self._channels = {}
        self._patterns = {}
        self._shard_channels = {}
        self._subscribed = False

    def _reply_waiting(self) -> bool:
        """True if bytes from the server wait unread in the socket (peeked, not read)."""
        sock = self._transport.get_extra_info("socket") if self._transport else None
        if sock is None:
            return False
        try:
            with sock.dup() as peek:
                return bool(peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:
            return False

    def _abort(self, exc: BaseException) -> None:
        self._close_error = exc
        if self._transport is not None:
            self._transport.abort()

    @property
    def _address_text(self) -> str:
        target = self._address.target
        return target if isinstance(target, str) else f"{target[0]}:{target[1]}"

    # -- commands ---------------------------------------------------------

    def execute(
        self,
        command: bytes | str,
        *args: Any,
        encoding: Any = _NOT_SET,
        on_error: ErrorHook | None = None,
    ) -> asyncio.Future[Any]:
        """Send ``command *args``; return a future of the reply.

        ``encoding`` overrides the connection's codec for this reply
        (``None`` returns bytes). Raises :class:`ConnectionClosedError` at
        once if the connection is closed, and :class:`TypeError` for
        arguments that cannot be sent. On a subscribed connection only
        (un)subscribe commands, PING and QUIT run; others raise
        :class:`RedisError` at once, as in aioredis 1.x. Cancelling the
        future of a blocking command (BLPOP, XREAD BLOCK, WAIT, ...) still
        waiting for its reply closes the connection, so the server never
        serves it to nobody.
        """
        if self._closing:
            raise ConnectionClosedError(
                f"connection to {self._address_text} is closed", may_have_executed=False
            )
        if self._subscribed and lookup_command(_SUBSCRIBED_OK, command) is None:
            raise RedisError(
                f"Connection in SUBSCRIBE mode: {command!r} refused; only (P|S)SUBSCRIBE, "
                "(P|S)UNSUBSCRIBE, PING and QUIT run on a subscribed connection"
            )
        hook: Any = None
        special = _special(command)
        given = encoding is None or type(encoding) is str
        if not given:
            # Not given (or another library's own "not set" marker: aioredis 1.x passes one).
            encoding = self._encoding
        if special is not None:
            if special in PUBSUB_COMMANDS:
                return self.execute_pubsub(command, *args)
            hook = self._state_hook(special, command, args)
        data = encode_command(command, args)
        if self._multi is not None or special == b"MULTI":
            encoding = self._in_multi(special, encoding, given)
        if self._read_timeout is not None and not self._waiters:
            self._progress_at = self._loop.time()
        future = self._loop.create_future()
        if hook is not None and type(hook) is _Blocking:
            future.add_done_callback(hook.given_up)
        self._waiters.append((future, encoding, hook, on_error, command, args))
        self._send(data)
        return future

    def execute_batch(
        self, commands: Sequence[Sequence[Any]], *, encoding: Any = _NOT_SET
    ) -> asyncio.Future[list[Any]]:
        """Send many commands in one write; one future for all their replies.

        ``commands`` are sequences ``(command, *args)``. The future resolves
        to the replies in order, error replies as exception instances (they
        do not fail the batch); it fails only if the connection is lost
        (:class:`ConnectionClosedError`, ``may_have_executed`` True if any part
        had been written). Connection-state and pub/sub commands are refused:
        run those with :meth:`execute`.
        """
        if self._closing:
            raise ConnectionClosedError(
                f"connection to {self._address_text} is closed", may_have_executed=False
            )
        if encoding is _NOT_SET or (encoding is not None and type(encoding) is not str):
            encoding = self._encoding
        payload: list[bytes] = []
        blocking: Any = None
        for entry in commands:
            if not entry:
                raise TypeError("execute_batch: empty command")
            command = entry[0]
            args = tuple(entry[1:])
            checked = lookup_command(_BATCH_CHECKED, command)
            if checked is not None:
                _refuse_checked(checked, command, args)
            payload.append(encode_command(command, args))
            if blocking is None and is_blocking(command, args):
                blocking = command
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if not payload:
            future.set_result([])
            return future
        if self._multi is not None:
            self._multi.codecs.extend([encoding] * len(payload))
        tracker = _Blocking(self, blocking) if blocking is not None else None
        if tracker is not None:
            future.add_done_callback(tracker.given_up)
        batch = _Batch(future, len(payload), tracker)
        entry_ = (future, encoding, batch, None, None, ())
        self._waiters.extend([entry_] * len(payload))
        if self._read_timeout is not None and len(self._waiters) == len(payload):
            self._progress_at = self._loop.time()
        self._buffer.append(b"".join(payload))
        self._unflushed += len(payload)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)
        return future

    def _state_hook(self, special: bytes, command: Any, args: tuple[Any, ...]) -> Any:
        """The hook to call with ``command``'s reply (blocking or state), or None."""
        if special in BLOCKING_COMMANDS:
            return _Blocking(self, command) if is_blocking(command, args) else None
        if special == b"CLIENT":
            _refuse_untracked_replies(command, args)
            return None
        if special == b"RESET":
            raise TypeError(
                "RESET is not supported: it drops subscriptions, transaction, db and "
                "credentials behind the connection's back; close the connection instead"
            )
        return self._tracked.on_send(special, args)

    def _in_multi(self, special: bytes | None, encoding: str | None, given: bool) -> Any:
        """Record a command sent from MULTI to EXEC/DISCARD; the encoding its waiter carries.

        Every command the server queues gets a slot (SELECT and PING too);
        MULTI and WATCH inside MULTI are refused by the server and QUIT runs
        at once: none of them is queued.
        EXEC's waiter carries the recorded codecs (``encoding=`` given to
        EXEC itself applies to every slot).
        """
        multi = self._multi
        if multi is None:  # MULTI opens the record
            self._multi = ExecCodecs(self._encoding)
        elif special == b"EXEC":
            self._multi = None
            return multi.override(encoding) if given else multi
        elif special == b"DISCARD":
            self._multi = None
        elif special not in _NOT_QUEUED:
            multi.codecs.append(encoding)
        return encoding

    def execute_pubsub(self, command: bytes | str, *channels: Any) -> asyncio.Future[Any]:
        """Run a (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE command.

        ``channels`` are names (bytes/str) or :class:`AbcChannel` objects to
        subscribe with. The future resolves to the server's confirmations
        once every channel is confirmed; subscribed channels are then in
        :attr:`pubsub_channels` / :attr:`pubsub_patterns`.
        """
        if self._closing:
            raise ConnectionClosedError(
                f"connection to {self._address_text} is closed", may_have_executed=False
            )
        registries = {
            "channels": self._channels, "patterns": self._patterns,
            "shard_channels": self._shard_channels,
        }
        request = parse_pubsub(command, channels, registries)
        name, names = request.command, request.names
        kind = name.lower()
        pending = dict(zip(names, request.channels, strict=False))
        future: asyncio.Future[Any] = self._loop.create_future()
        # The server confirms once per argument, duplicates included.
        expected = len(names) if names else None
        wait = _PubSubWait(future, kind, pending, expected)
        data = encode_command(name, tuple(names))
        self._waiters.append((future, None, wait, None, name, ()))
        self._pubsub_pending += 1
        self._send(data)
        return future

    def _on_pubsub_event(self, obj: list[Any]) -> None:
        kind = obj[0]
        if kind in _MESSAGES:
            if kind == b"message":
                channel = self._channels.get(obj[1])
                if channel is not None:
                    channel.put_nowait(obj[2])
            elif kind == b"pmessage":
                channel = self._patterns.get(obj[1])
                if channel is not None:
                    channel.put_nowait((obj[2], obj[3]))
            else:
                channel = self._shard_channels.get(obj[1])
                if channel is not None:
                    channel.put_nowait(obj[2])
            return
        registry_name, subscribed = _CONFIRMATIONS[kind]
        registry: dict[bytes, AbcChannel] = getattr(self, "_" + registry_name)
        name = obj[1]
        head = self._waiters[0] if self._waiters else None
        wait = head[2] if head is not None else None
        if not isinstance(wait, _PubSubWait) or wait.kind != kind:
            # Pushed by the server on its own (e.g. SUNSUBSCRIBE after a slot move).
            channel = registry.pop(name, None) if name is not None else None
            self._subscribed = bool(self._channels or self._patterns or self._shard_channels)
            if channel is not None:
                if self.on_unsubscribed is not None:
                    self.on_unsubscribed(self, kind, channel)
                else:
                    channel.close()
            return
        if subscribed:
            channel = wait.pending.get(name)
            if channel is not None:
                registry[name] = channel
        elif name is not None:
            channel = registry.pop(name, None)
            if channel is not None:
                channel.close()
        self._subscribed = bool(self._channels or self._patterns or self._shard_channels)
        wait.replies.append(obj)
        if wait.remaining is None:
            done = name is None or not registry
        else:
            wait.remaining -= 1
            done = wait.remaining <= 0
        if done:
            self._waiters.popleft()
            self._pubsub_pending -= 1
            if not wait.future.done():
                wait.future.set_result(wait.replies)

    @contextmanager
    def _buffered(self) -> Iterator[None]:
        """Kept for aioredis 1.x pipelines: writes are already coalesced per tick."""
        yield

    # -- state ------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; pending commands fail with ConnectionForcedCloseError."""
        if self._closing:
            return
        self._closing = True
        if self._flush_handle is not None:
            # Commands still in our buffer are never sent: they fail as not executed.
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._transport is not None:
            self._transport.close()
        elif not self._closed_future.done():
            self._on_lost(None)

    async def wait_closed(self) -> None:
        """Wait until the socket is closed."""
        await asyncio.shield(self._closed_future)

    @property
    def closed(self) -> bool:
        """True when closing or closed."""
        return self._closing

    @property
    def address(self) -> tuple[str, int] | str:
        """``(host, port)`` or the unix socket path."""
        return self._address.target

    @property
    def server_address(self) -> ServerAddress:
        """The full parsed address, with options (password hidden in repr)."""
        return self._address

    @property
    def db(self) -> int:
        """The selected database index."""
        return self._tracked.db

    @property
    def encoding(self) -> str | None:
        """The default reply codec."""
        return self._encoding

    @property
    def in_transaction(self) -> bool:
        """True between MULTI and EXEC/DISCARD."""
        return self._tracked.in_transaction

    @property
    def in_flight(self) -> int:
        """Commands sent or queued whose replies have not arrived yet."""
        return len(self._waiters)

    @property
    def watching(self) -> bool:
        """True from a WATCH until a confirmed EXEC, DISCARD or UNWATCH."""
        return self._tracked.watching

    @property
    def state(self) -> ConnectionState:
        """A snapshot of the tracked state (what the hand-back contract judges)."""
        tracked = self._tracked
        return ConnectionState(
            closed=self._closing,
            tracked=tracked.tracked,
            in_flight=len(self._waiters),
            blocking=self._blocking,
            subscribed=bool(self._pubsub_pending or self.in_pubsub),
            in_transaction=tracked.in_transaction,
            watching=tracked.watching,
            db=tracked.db,
            readonly=tracked.readonly,
            credentials=tracked.credentials,
        )

    @property
    def in_pubsub(self) -> int:
        """Number of subscribed channels, patterns and shard channels."""
        return len(self._channels) + len(self._patterns) + len(self._shard_channels)

    @property
    def pubsub_channels(self) -> Mapping[bytes, AbcChannel]:
        """Read-only view of subscribed channels."""
        return ChannelMap(self._channels)

    @property
    def pubsub_patterns(self) -> Mapping[bytes, AbcChannel]:
        """Read-only view of subscribed patterns."""
        return ChannelMap(self._patterns)

    @property
    def pubsub_shard_channels(self) -> Mapping[bytes, AbcChannel]:
        """Read-only view of subscribed sharded channels (SSUBSCRIBE)."""
        return ChannelMap(self._shard_channels)

    def select(self, db: int) -> Awaitable[bool]:
        """Change the selected database (a bad ``db`` or a closed connection raise at the call)."""
        return _is_ok(self.execute(b"SELECT", check_db(db)))

    async def auth(self, password: str, username: str | None = None) -> bool:
        """Authenticate (ACL ``username`` optional)."""
        args = (username, password) if username else (password,)
        return bool(await self.execute(b"AUTH", *args) in (b"OK", "OK"))

    def __repr__(self) -> str:
        state = "closed" if self._closing else f"db={self._tracked.db}"
        return f"<RedisConnection {self._address_text} {state}>"


async def _is_ok(reply: Awaitable[Any]) -> bool:
    return bool(await reply in (b"OK", "OK"))


async def create_connection(
    address: Any,
    *,
    db: int | None = None,
    username: str | None = None,
    password: str | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    encoding: str | None = None,
    parser: Any = None,
    timeout: float | None = None,
    connection_cls: type[RedisConnection] | None = None,
    name: str | None = None,
    read_timeout: float | None = None,
) -> RedisConnection:
    """Open a connection to one server and run the handshake.

    ``address`` is ``(host, port)``, a unix socket path or a ``redis://``,
    ``rediss://`` or ``unix://`` URL; keyword arguments fill what the URL does
    not say. The handshake sends AUTH (with ACL ``username``), SELECT and
    CLIENT SETNAME as needed, pipelined. ``timeout`` bounds connect and
    handshake together (:class:`clustermgr.errors.TimeoutError`).
    ``read_timeout`` closes the connection when replies are awaited and none
    arrives for that long (a hung or paused server); its pending commands
    fail with :class:`ConnectionClosedError` (``may_have_executed=True``).
    Blocking commands (BLPOP, XREAD BLOCK, ...) suspend the check.
    """
    check_options(
        db=db, username=username, password=password, ssl=ssl, encoding=encoding,
        timeout=timeout, name=name, read_timeout=read_timeout, parser=parser,
    )
    parsed = parse_address(address).with_defaults(
        db=db, username=username, password=password, encoding=encoding,
        timeout=timeout, name=name,
    )
    use_ssl = resolve_tls([parsed], ssl)
    check_class("connection_cls", connection_cls, RedisConnection)
    cls = connection_cls or RedisConnection
    loop = asyncio.get_running_loop()
    conn = cls(
        parsed, encoding=parsed.encoding, parser=parser, loop=loop, read_timeout=read_timeout
    )
    try:
        async with _timeout(parsed.timeout):
            if parsed.path is not None:
                transport, _ = await loop.create_unix_connection(
                    lambda: _Protocol(conn), parsed.path, ssl=use_ssl or None
                )
            else:
                transport, _ = await loop.create_connection(
                    lambda: _Protocol(conn), parsed.host or "127.0.0.1", parsed.port or 6379,
                    ssl=use_ssl or None,
                )
            conn._attach(transport)
            await _handshake(conn, parsed)
    except asyncio.TimeoutError:
        conn.close()
        raise TimeoutError(
            f"connecting to {conn._address_text} timed out after {parsed.timeout}s"
        ) from None
    except OSError as exc:
        conn.close()
        raise ConnectError(
            f"cannot connect to {conn._address_text}: {exc.strerror or exc}"
        ) from exc
    except (UnicodeError, ValueError) as exc:  # a host the resolver cannot take
        opened = conn._transport is not None  # then the handshake raised: not a connect error
        conn.close()
        if opened:
            await conn.wait_closed()
            raise
        raise ConnectError(f"cannot connect to {conn._address_text}: {exc}") from exc
    except BaseException:
        conn.close()
        await conn.wait_closed()
        raise
    return conn


async def _handshake(conn: RedisConnection, address: ServerAddress) -> None:
    steps: list[asyncio.Future[Any]] = []
    if address.password:
        auth = (address.username, address.password) if address.username else (address.password,)
        steps.append(conn.execute(b"AUTH", *auth, encoding=None))
    if address.db:
        steps.append(conn.execute(b"SELECT", address.db, encoding=None))
    if address.name:
        steps.append(conn.execute(b"CLIENT", b"SETNAME", address.name, encoding=None))
    if not steps:
        return
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, RedisError):
            raise result
        if isinstance(result, BaseException):
            raise result
