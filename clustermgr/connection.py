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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from ._timeout import timeout as _timeout
from .abc import AbcChannel, AbcConnection
from .address import ServerAddress, parse_address
from .errors import (
    ConnectError,
    ConnectionClosedError,
    ConnectionForcedCloseError,
    ProtocolError,
    RedisError,
    ReplyError,
    TimeoutError,
    WatchVariableError,
)
from .protocol import (
    case_variants,
    decode,
    encode_command,
    is_blocking,
    lookup_command,
    new_reader,
)
from .pubsub import PUBSUB_COMMANDS, parse_pubsub
from .stats import Counters

__all__ = ["RedisConnection", "create_connection"]

logger = logging.getLogger("clustermgr.connection")

_NOT_SET: Any = object()

# Server confirmation kind -> (registry, subscribed?), derived from the command table.
_CONFIRMATIONS = {command.lower(): entry for command, entry in PUBSUB_COMMANDS.items()}
_MESSAGES = frozenset({b"message", b"pmessage", b"smessage"})
_PUBSUB_EVENTS = _MESSAGES | frozenset(_CONFIRMATIONS)


# Commands the connection must look at (state or pub/sub); everything else
# passes straight through. Looked up by the command exactly as the caller
# spelled it, falling back to upper-casing only for mixed case.
_SPECIAL = case_variants(
    "SELECT", "MULTI", "EXEC", "DISCARD", "QUIT",
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
)


def _special(command: Any) -> bytes | None:
    return lookup_command(_SPECIAL, command)


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

    __slots__ = ("future", "index", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], size: int) -> None:
        self.future = future
        self.replies: list[Any] = [None] * size
        self.index = 0

    def add(self, reply: Any, encoding: str | None) -> None:
        if encoding is not None and not isinstance(reply, ReplyError):
            try:
                reply = decode(reply, encoding)
            except Exception as exc:  # a bad codec fails this reply only
                reply = exc
        self.replies[self.index] = reply
        self.index += 1
        if self.index == len(self.replies) and not self.future.done():
            self.future.set_result(self.replies)


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
        if read_timeout is not None and read_timeout <= 0:
            raise ValueError(f"read_timeout must be positive seconds, not {read_timeout}")
        self._address = address
        self._encoding = encoding
        self._loop = loop or asyncio.get_running_loop()
        self._reader = new_reader(parser)
        self._transport: asyncio.Transport | None = None
        # (future, encoding, state hook, error hook, command, args) per reply awaited.
        self._waiters: deque[
            tuple[asyncio.Future[Any], str | None, Any, ErrorHook | None, Any, tuple[Any, ...]]
        ] = deque()
        self._buffer: list[bytes] = []
        self._unflushed = 0
        self._flush_handle: asyncio.Handle | None = None
        self._db = 0
        self._in_transaction = False
        # Between MULTI and EXEC: each queued command's codec, for its EXEC slot.
        self._queued_encodings: list[str | None] = []
        self._closing = False
        self._close_error: BaseException | None = None
        self._closed_future: asyncio.Future[None] = self._loop.create_future()
        self._channels: dict[bytes, AbcChannel] = {}
        self._patterns: dict[bytes, AbcChannel] = {}
        self._shard_channels: dict[bytes, AbcChannel] = {}
        self._pubsub_pending = 0
        # Stall detection (read_timeout): when replies are awaited and nothing
        # arrives for read_timeout seconds, the connection is aborted.
        self._read_timeout = read_timeout
        self._progress_at = 0.0
        self._blocking_in_flight = False
        self._watchdog: asyncio.TimerHandle | None = None
        #: Called when the connection drops (not on close()). When set, its
        #: channels are left open for the owner to resubscribe elsewhere.
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
        if not self._waiters:
            self._blocking_in_flight = False
        elif (
            not self._blocking_in_flight
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
            if (
                (self._pubsub_pending or self._channels or self._patterns or self._shard_channels)
                and type(obj) is list
                and obj
                and obj[0] in _PUBSUB_EVENTS
            ):
                self._on_pubsub_event(obj)
                continue
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
                    hook = None
            if future.done():  # cancelled by its caller; the reply is dropped
                continue
            if isinstance(obj, ReplyError):
                self.stats.error(type(obj).__name__)
                if on_error is None or not on_error(future, obj, command, args, encoding):
                    future.set_exception(obj)
                continue
            try:
                if hook is not None:
                    obj = hook(obj)
                if encoding is not None:
                    obj = decode(obj, encoding)
            except Exception as exc:  # a bad codec fails this command only
                future.set_exception(exc)
                continue
            future.set_result(obj)

    def _on_lost(self, exc: BaseException | None) -> None:
        forced = self._closing
        self._closing = True
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
                if on_error is not None and on_error(future, error, command, args, enc):
                    continue
                target.set_exception(error)
        self._waiters.clear()
        self._buffer.clear()
        self._unflushed = 0
        self._pubsub_pending = 0
        self._release_channels(cause, forced)
        if not self._closed_future.done():
            self._closed_future.set_result(None)
        if not forced:
            (logger.warning if self._close_error is not None else logger.info)("%s", message)

    def _release_channels(self, cause: BaseException | None, forced: bool) -> None:
        if self.on_pubsub_lost is not None and not forced:
            # The owner keeps the channels open and resubscribes them elsewhere.
            self.on_pubsub_lost(self, cause)
        else:
            for registry in (self._channels, self._patterns, self._shard_channels):
                for channel in registry.values():
                    channel.close(cause if not forced else None)
        self._channels = {}
        self._patterns = {}
        self._shard_channels = {}

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
        arguments that cannot be sent.
        """
        if self._closing:
            raise ConnectionClosedError(
                f"connection to {self._address_text} is closed", may_have_executed=False
            )
        hook: Any = None
        special = _special(command)
        explicit = encoding is None or type(encoding) is str
        if not explicit:
            # Not given (or another library's own "not set" marker: aioredis 1.x passes one).
            encoding = self._encoding
        if special is not None:
            if special in PUBSUB_COMMANDS:
                return self.execute_pubsub(command, *args)
            if special == b"EXEC" and self._in_transaction:
                hook = self._exec_hook(encoding if explicit else _NOT_SET)
                encoding = None  # the hook decodes each slot
            else:
                hook = self._state_hook(special, args)
        elif self._in_transaction:
            self._queued_encodings.append(encoding)
        data = encode_command(command, args)
        if self._read_timeout is not None:
            if not self._waiters:
                self._progress_at = self._loop.time()
            if is_blocking(command, args):
                self._blocking_in_flight = True  # may legitimately wait: not a stall
        future = self._loop.create_future()
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
        for entry in commands:
            if not entry:
                raise TypeError("execute_batch: empty command")
            command = entry[0]
            if _special(command) is not None:
                raise TypeError(
                    f"execute_batch: {command!r} changes connection state; use execute()"
                )
            payload.append(encode_command(command, tuple(entry[1:])))
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if not payload:
            future.set_result([])
            return future
        if self._in_transaction:
            self._queued_encodings.extend([encoding] * len(payload))
        batch = _Batch(future, len(payload))
        entry_ = (future, encoding, batch, None, None, ())
        self._waiters.extend([entry_] * len(payload))
        if self._read_timeout is not None and len(self._waiters) == len(payload):
            self._progress_at = self._loop.time()
        self._buffer.append(b"".join(payload))
        self._unflushed += len(payload)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)
        return future

    def _state_hook(self, special: bytes, args: tuple[Any, ...]) -> Any:
        if special == b"SELECT":
            if len(args) != 1:
                raise TypeError("SELECT takes exactly one argument: the db index")
            db = int(args[0])

            def selected(reply: Any) -> Any:
                self._db = db
                return reply

            return selected
        if special == b"MULTI":
            self._in_transaction = True
            self._queued_encodings = []
        elif special in (b"EXEC", b"DISCARD"):
            self._in_transaction = False
        return None

    def _exec_hook(self, override: Any) -> Callable[[Any], Any]:
        """The EXEC reply hook: each slot decoded with its own command's codec.

        ``override`` (EXEC's own ``encoding=``, if given) applies to every
        slot. A nil reply (a WATCHed key changed, nothing ran) raises
        :class:`WatchVariableError`; error replies stay in place as instances.
        """
        self._in_transaction = False
        encodings, self._queued_encodings = self._queued_encodings, []

        def exec_reply(reply: Any) -> Any:
            if reply is None:
                raise WatchVariableError("WATCH variable has changed")
            if type(reply) is not list:
                return reply
            result = []
            for index, item in enumerate(reply):
                codec = override if override is not _NOT_SET else (
                    encodings[index] if index < len(encodings) else self._encoding
                )
                if codec is not None:
                    try:
                        item = decode(item, codec)
                    except Exception as exc:  # a bad codec fails this slot only
                        item = exc
                result.append(item)
            return result

        return exec_reply

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
        expected = len(set(names)) if names else None
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
        return self._db

    @property
    def encoding(self) -> str | None:
        """The default reply codec."""
        return self._encoding

    @property
    def in_transaction(self) -> bool:
        """True between MULTI and EXEC/DISCARD."""
        return self._in_transaction

    @property
    def in_flight(self) -> int:
        """Commands sent or queued whose replies have not arrived yet."""
        return len(self._waiters)

    @property
    def in_pubsub(self) -> int:
        """Number of subscribed channels, patterns and shard channels."""
        return len(self._channels) + len(self._patterns) + len(self._shard_channels)

    @property
    def pubsub_channels(self) -> Mapping[bytes, AbcChannel]:
        """Read-only view of subscribed channels."""
        return MappingProxyType(self._channels)

    @property
    def pubsub_patterns(self) -> Mapping[bytes, AbcChannel]:
        """Read-only view of subscribed patterns."""
        return MappingProxyType(self._patterns)

    @property
    def pubsub_shard_channels(self) -> Mapping[bytes, AbcChannel]:
        """Read-only view of subscribed sharded channels (SSUBSCRIBE)."""
        return MappingProxyType(self._shard_channels)

    async def select(self, db: int) -> bool:
        """Change the selected database."""
        return bool(await self.execute(b"SELECT", db) in (b"OK", "OK"))

    async def auth(self, password: str, username: str | None = None) -> bool:
        """Authenticate (ACL ``username`` optional)."""
        args = (username, password) if username else (password,)
        return bool(await self.execute(b"AUTH", *args) in (b"OK", "OK"))

    def __repr__(self) -> str:
        state = "closed" if self._closing else f"db={self._db}"
        return f"<RedisConnection {self._address_text} {state}>"


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
    parsed = parse_address(address).with_defaults(
        db=db, username=username, password=password, encoding=encoding,
        timeout=timeout, name=name,
    )
    if ssl is not None and ssl is not False:
        use_ssl: ssl_module.SSLContext | bool | None = ssl
    elif parsed.ssl:
        use_ssl = ssl_module.create_default_context()
    else:
        use_ssl = None
    if parsed.db is not None and (isinstance(parsed.db, bool) or not isinstance(parsed.db, int)):
        raise TypeError(f"db must be an int, got {parsed.db!r}")
    cls = connection_cls or RedisConnection
    if not (isinstance(cls, type) and issubclass(cls, RedisConnection)):
        raise TypeError(f"connection_cls must be a RedisConnection subclass, got {cls!r}")
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
