"""One connection to one Redis server.

``execute()`` writes the command and returns a future at once; replies are
matched to waiting futures in FIFO order, so any number of commands can be in
flight on one socket. Commands issued in the same event-loop tick leave in a
single ``write``.

The parts with one job each live beside it: :mod:`clustermgr.dispatch`
(replies to waiters), :mod:`clustermgr.pubsubframes` (the pub/sub side),
:mod:`clustermgr.blocking` (blocking commands in flight) and
:mod:`clustermgr.batching` (batches and MULTI bookkeeping).
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Any

from ._timeout import timeout as _timeout
from .abc import AbcChannel, AbcConnection
from .address import ServerAddress, check_db, parse_address
from .batching import (
    BATCH_CHECKED_NAMES,
    STATE_COMMANDS,
    SUBSCRIBE_COMMANDS,
    BatchReplies,
    prepare_batch,
    queue_in_multi,
    refuse_in_batch,
    refuse_untracked_replies,
)
from .blocking import BlockingCommands, BlockingWait, warn_if_replied
from .bounds import CONNECT_TIMEOUT, DEFAULT, READ_TIMEOUT, Default, blocking_wait, resolve
from .credentials import CredentialProvider, get_credentials
from .demoted import all_plain, demote_plain
from .dispatch import ErrorHook, ReplyDispatcher
from .errors import (
    ConnectError,
    ConnectionClosedError,
    ConnectionForcedCloseError,
    RedisError,
    TimeoutError,
)
from .execreply import ExecCodecs
from .handback import ConnectionState
from .options import check_class, check_options
from .protocol import (
    BLOCKING_COMMANDS,
    case_variants,
    encode_command,
    lookup_command,
    new_reader,
)
from .pubsub import PUBSUB_COMMANDS, ChannelMap
from .pubsubframes import PubSubState
from .replybound import DEFAULT_MAX_REPLY_SIZE
from .stall import Overdue, StallWatch
from .stats import Counters
from .tlsopts import resolve_tls
from .tracking import StateTracker
from .writer import CommandWriter

__all__ = [
    "BATCH_CHECKED_NAMES", "SPECIAL_COMMANDS", "ErrorHook", "RedisConnection", "create_connection",
    "is_plain", "refuse_in_batch",
]

logger = logging.getLogger("clustermgr.connection")

_NOT_SET: Any = object()

#: Commands the connection must look at (state, pub/sub, blocking); every
#: other command is *plain* and passes straight through. Looked up by the
#: command exactly as the caller spelled it, upper-cased only for mixed case.
SPECIAL_COMMANDS = {
    **STATE_COMMANDS,
    **SUBSCRIBE_COMMANDS,
    **BLOCKING_COMMANDS,
}
_SPECIAL = SPECIAL_COMMANDS
# What a subscribed connection still runs (the server refuses the rest).
_SUBSCRIBED_OK = {**SUBSCRIBE_COMMANDS, **case_variants("PING", "QUIT")}


def _special(command: Any) -> bytes | None:
    return lookup_command(_SPECIAL, command)


def is_plain(command: bytes | str) -> bool:
    """True if ``command`` (a name, any case) is plain: it changes no connection
    state, does not (un)subscribe and never blocks (not in :data:`SPECIAL_COMMANDS`).

    A caller that classified a command this way once (a router, per command
    kind) sends it with :meth:`RedisConnection.execute_plain` /
    :meth:`~clustermgr.pool.ConnectionsPool.execute_plain` and no layer looks
    its name up again.
    """
    return _special(command) is None


PubSubLostHook = Callable[["RedisConnection", BaseException | None], None]
UnsubscribedHook = Callable[["RedisConnection", bytes, AbcChannel], None]


class _Protocol(asyncio.Protocol):
    def __init__(self, conn: RedisConnection) -> None:
        self.conn = conn
        # Bind straight to the reply dispatch: one call per chunk, no indirection.
        self.data_received = conn._replies.feed  # type: ignore[method-assign]

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
        max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
    ) -> None:
        check_options(read_timeout=read_timeout, max_reply_size=max_reply_size)
        self._address = address
        self._encoding = encoding
        self._loop = loop or asyncio.get_running_loop()
        target = address.target
        self._peer: tuple[str, int] | None = None  # the TCP peer, once connected
        self._pubsub = PubSubState(self._server_unsubscribed)
        self._replies = ReplyDispatcher(
            new_reader(parser, host=target[0] if isinstance(target, tuple) else None),
            self._pubsub,
            abort=self._abort,
            count_error=lambda name: self.stats.error(name),
            describe=self._address_text,
            max_reply_size=max_reply_size,
        )
        # One entry per reply awaited (the dispatcher's queue; see dispatch.Waiter).
        self._waiters = self._replies.waiters
        # Commands out to the socket; the unsent ones (the waiters at the tail).
        self._writer = CommandWriter(self._loop, self._waiters, Counters())
        self._tracked = StateTracker()
        self._blocking = BlockingCommands(self._blocking_given_up)
        # Between MULTI and EXEC/DISCARD: each queued command's codec, for its EXEC slot.
        self._multi: ExecCodecs | None = None
        self._closing = False
        self._close_error: BaseException | None = None
        self._closed_future: asyncio.Future[None] = self._loop.create_future()
        # read_timeout: the connection is aborted when replies are awaited and none comes.
        self._stall: StallWatch | None = None
        if read_timeout is not None:
            self._stall = StallWatch(
                self._loop, read_timeout, due_since=self._due_since, abort=self._abort
            )
            self._replies.on_progress = self._stall.progress
        #: Called when the connection ends (dropped or closed). When set, its
        #: channels are left open: the owner decides which end.
        self.on_pubsub_lost: PubSubLostHook | None = None
        #: Called when the server unsubscribes a channel on its own (sharded
        #: channel whose slot moved). When unset the channel is closed.
        self.on_unsubscribed: UnsubscribedHook | None = None

    def watch_overdue(self, overdue: Overdue) -> None:
        """Call ``overdue.call()`` when replies are due and none came for
        ``overdue.after`` seconds (once per silence; needs ``read_timeout``)."""
        if self._stall is not None:
            self._stall.watch_overdue(overdue)

    # -- plumbing ---------------------------------------------------------

    @property
    def stats(self) -> Counters:
        """Commands sent and errors seen (a pool replaces it with its node's counters)."""
        return self._writer.stats

    @stats.setter
    def stats(self, counters: Counters) -> None:
        self._writer.stats = counters

    def _attach(self, transport: asyncio.Transport) -> None:
        self._writer.attach(transport)
        if self._stall is not None:
            self._stall.start()
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self._peer = (peer[0], peer[1])

    def _due_since(self) -> float | None:
        """When replies became due (the stall check): None while none is written,
        0.0 for ordinary commands, the end of a blocking command's own wait."""
        if self._closing or not self._waiters or self._writer.unflushed:
            return None
        return self._blocking.until if self._blocking.count else 0.0

    def _server_unsubscribed(self, kind: bytes, channel: AbcChannel) -> None:
        if self.on_unsubscribed is not None:
            self.on_unsubscribed(self, kind, channel)
        else:
            channel.close()

    def _blocking_given_up(self, command: Any) -> None:
        """The caller of blocking ``command`` cancelled before its reply: close."""
        if not self._closing:
            warn_if_replied(self._writer.transport, self._address_text, command)
            logger.debug("closing %r: its caller gave up on %r", self, command)
            self.close()

    def _on_lost(self, exc: BaseException | None) -> None:
        forced = self._closing
        self._closing = True
        writer = self._writer
        transport, writer.transport = writer.transport, None
        if transport is not None and not transport.is_closing():
            # Python 3.10's SSL transport stays "open" after connection_lost (a
            # ResourceWarning when collected) unless it is closed explicitly.
            transport.close()
        if self._stall is not None:
            self._stall.stop()
        cause = self._close_error or exc
        message = f"connection to {self._address_text} " + (
            "was closed" if forced and self._close_error is None
            else "lost" if cause is None else f"lost: {cause}"
        )
        # Waiters whose bytes never left our buffer cannot have run.
        written = len(self._waiters) - writer.withdraw()
        error_cls = ConnectionForcedCloseError if forced else ConnectionClosedError
        if not forced:
            self.stats.disconnects += 1
            if self._waiters:
                self.stats.error(error_cls.__name__, len(self._waiters))
        self._replies.fail_pending(error_cls, message, cause, written)
        self._replies.report_dropped_pushes()
        self._blocking.clear()
        # The owner's hook, when set, decides which channels end (closed by us or lost alike).
        hook = self.on_pubsub_lost
        self._pubsub.release(cause, forced, None if hook is None else partial(hook, self))
        if not self._closed_future.done():
            self._closed_future.set_result(None)
        if not forced:
            (logger.warning if self._close_error is not None else logger.info)("%s", message)

    def _abort(self, exc: BaseException) -> None:
        self._close_error = exc
        if self._writer.transport is not None:
            self._writer.transport.abort()

    @property
    def _address_text(self) -> str:
        target = self._address.target
        return target if isinstance(target, str) else f"{target[0]}:{target[1]}"

    def _refuse_closed(self) -> None:
        if self._closing:
            raise ConnectionClosedError(
                f"connection to {self._address_text} is closed", may_have_executed=False
            )

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
            self._refuse_closed()
        if self._pubsub.subscribed and lookup_command(_SUBSCRIBED_OK, command) is None:
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
            self._multi, encoding = queue_in_multi(
                self._multi, special, encoding, given, self._encoding
            )
        if self._stall is not None and not self._waiters:
            self._stall.progress()
        future = self._loop.create_future()
        if hook is not None and type(hook) is BlockingWait:
            future.add_done_callback(hook.given_up)
        self._waiters.append((future, encoding, hook, on_error, command, args))
        self._writer.send(data)
        return future

    def execute_plain(
        self, command: bytes | str, args: tuple[Any, ...], *,
        encoding: Any = _NOT_SET, on_error: ErrorHook | None = None,
    ) -> asyncio.Future[Any]:
        """:meth:`execute` of ``command *args``, classified plain by the caller
        (:func:`is_plain`): no state hook, pub/sub or blocking bound, so no name
        lookup. A closed, subscribed or MULTI connection takes :meth:`execute`."""
        if self._closing or self._multi is not None or self._pubsub.subscribed:
            return self.execute(command, *args, encoding=encoding, on_error=on_error)
        if encoding is not None and type(encoding) is not str:
            encoding = self._encoding
        data = encode_command(command, args)
        if self._stall is not None and not self._waiters:
            self._stall.progress()
        future = self._loop.create_future()
        self._waiters.append((future, encoding, None, on_error, command, args))
        self._writer.send(data)
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
        self._refuse_closed()
        payload, blocking, wait = prepare_batch(commands)
        return self._send_batch(payload, encoding, blocking, wait)

    def execute_plain_batch(
        self, commands: Sequence[Sequence[Any]], *, encoding: Any = _NOT_SET
    ) -> asyncio.Future[list[Any]]:
        """:meth:`execute_batch` of commands the caller checked: none empty, each
        plain (:func:`is_plain`) or XREAD without BLOCK. No name is looked up."""
        self._refuse_closed()
        payload = [encode_command(entry[0], tuple(entry[1:])) for entry in commands]
        return self._send_batch(payload, encoding, None, 0.0)

    def _send_batch(
        self, payload: list[bytes], encoding: Any, blocking: Any, wait: float
    ) -> asyncio.Future[list[Any]]:
        """Queue encoded ``payload`` as one batch (``blocking``, ``wait``: see prepare_batch)."""
        if encoding is _NOT_SET or (encoding is not None and type(encoding) is not str):
            encoding = self._encoding
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if not payload:
            future.set_result([])
            return future
        if self._multi is not None:
            self._multi.codecs.extend([encoding] * len(payload))
        tracker = (
            self._blocking.track(blocking, self._loop.time() + wait)
            if blocking is not None else None
        )
        if tracker is not None:
            future.add_done_callback(tracker.given_up)
        batch = BatchReplies(future, len(payload), tracker)
        entry_ = (future, encoding, batch, None, None, ())
        self._waiters.extend([entry_] * len(payload))
        if self._stall is not None and len(self._waiters) == len(payload):
            self._stall.progress()
        self._writer.queue(b"".join(payload), len(payload))
        return future

    def _state_hook(self, special: bytes, command: Any, args: tuple[Any, ...]) -> Any:
        """The hook to call with ``command``'s reply (blocking or state), or None."""
        if special in BLOCKING_COMMANDS:
            wait = blocking_wait(special, args)
            if wait is None:  # XREAD without BLOCK, or a timeout the server refuses at once
                return None
            return self._blocking.track(command, self._loop.time() + wait)
        if special == b"CLIENT":
            refuse_untracked_replies(command, args)
            return None
        if special == b"RESET":
            raise TypeError(
                "RESET is not supported: it drops subscriptions, transaction, db and "
                "credentials behind the connection's back; close the connection instead"
            )
        return self._tracked.on_send(special, args)

    def execute_pubsub(self, command: bytes | str, *channels: Any) -> asyncio.Future[Any]:
        """Run a (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE command.

        ``channels`` are names (bytes/str) or :class:`AbcChannel` objects to
        subscribe with. The future resolves to the server's confirmations
        once every channel is confirmed; subscribed channels are then in
        :attr:`pubsub_channels` / :attr:`pubsub_patterns`.
        """
        self._refuse_closed()
        future: asyncio.Future[Any] = self._loop.create_future()
        name, data, wait = self._pubsub.request(command, channels, future)
        self._waiters.append((future, None, wait, None, name, ()))
        self._writer.send(data)
        return future

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
        self._writer.hold()  # what is still queued is never sent: it fails as not executed
        if self._writer.transport is not None:
            self._writer.transport.close()
        elif not self._closed_future.done():
            self._on_lost(None)

    def demote(self, grace: float, *, exclusive: bool = False) -> None:
        """The server stopped being a master (cluster fencing).

        Replies still due are no longer trusted as acknowledgements, commands
        not yet written fail as not executed, and what is still unanswered
        after ``grace`` seconds fails when the connection is dropped then
        (see :mod:`clustermgr.demoted`). It is dropped at once, idle or not,
        when lent for ``exclusive`` use (its holder's next commands would go
        to the demoted server too), and when a batch, transaction,
        subscription or blocking command is pending.
        """
        if self._closing or not (self._waiters or exclusive):
            return
        if exclusive or self._multi is not None or self._pubsub.subscribed or not all_plain(
            self._waiters
        ):
            self._drop(ConnectionAbortedError(f"{self._address_text} was demoted from master"))
            return
        demote_plain(
            self._waiters, self._writer.withdraw(), self._address_text, self.stats.error,
            grace, self._drop,
        )

    def _drop(self, error: BaseException) -> None:
        """Abort now, failing what is pending with ``error`` as the cause: not a
        graceful close, whose flush a frozen server's full socket would hold up."""
        if self._closing:
            return
        self._closing = True
        self._writer.hold()  # what is still queued is never sent
        self._close_error = error
        if self._writer.transport is not None:
            self._writer.transport.abort()
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
        """The peer's ``(ip, port)`` (as aioredis), or the unix socket path.

        The configured address (a host name, options) is :attr:`server_address`.
        """
        return self._peer or self._address.target

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
            blocking=self._blocking.count,
            subscribed=bool(self._pubsub.pending or self._pubsub.count),
            in_transaction=tracked.in_transaction,
            watching=tracked.watching,
            db=tracked.db,
            readonly=tracked.readonly,
            credentials=tracked.credentials,
        )

    @property
    def in_pubsub(self) -> int:
        """Number of subscribed channels, patterns and shard channels."""
        return self._pubsub.count

    @property
    def pubsub_channels(self) -> Mapping[bytes, AbcChannel]:
        """Read-only view of subscribed channels."""
        return ChannelMap(self._pubsub.channels)

    @property
    def pubsub_patterns(self) -> Mapping[bytes, AbcChannel]:
        """Read-only view of subscribed patterns."""
        return ChannelMap(self._pubsub.patterns)

    @property
    def pubsub_shard_channels(self) -> Mapping[bytes, AbcChannel]:
        """Read-only view of subscribed sharded channels (SSUBSCRIBE)."""
        return ChannelMap(self._pubsub.shard_channels)

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
    timeout: float | Default | None = DEFAULT,
    connection_cls: type[RedisConnection] | None = None,
    name: str | None = None,
    read_timeout: float | Default | None = DEFAULT,
    credential_provider: CredentialProvider | None = None,
    max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
) -> RedisConnection:
    """Open a connection to one server and run the handshake.

    ``address`` is ``(host, port)``, a unix socket path or a ``redis://``,
    ``rediss://`` or ``unix://`` URL; keyword arguments fill what the URL does
    not say. The handshake sends AUTH (with ACL ``username``), SELECT and
    CLIENT SETNAME as needed, pipelined. ``timeout`` (default 5 s, or the
    URL's ``timeout``) bounds connect and handshake together
    (:class:`clustermgr.errors.TimeoutError`). ``read_timeout`` (default 10 s)
    closes the connection when replies are due and none arrives for that long
    (a hung or paused server); its pending commands fail with
    :class:`ConnectionClosedError` (``may_have_executed=True``, caused by a
    :class:`~clustermgr.errors.ReplyTimeoutError`). A blocking command's reply
    is due once its own timeout has passed (BLPOP 0 waits forever). ``None``
    turns a bound off (see :mod:`clustermgr.bounds`).
    ``credential_provider`` (:mod:`clustermgr.credentials`), asked first
    (within ``timeout`` too), gives the username and password to send.
    ``max_reply_size`` (bytes, default 512 MiB like the server's
    ``proto-max-bulk-len``; None: unbounded) bounds one reply: a reply that
    announces or sends more closes the connection with
    :class:`~clustermgr.replybound.ReplyTooLargeError` as the cause, before
    more than the bound is buffered. The bound is kept by walking every reply
    header in Python before hiredis parses it: cheap for few large values, a
    few tenths of a microsecond per element of a large aggregate (LRANGE of
    thousands of items); ``None`` skips the walk.
    """
    check_options(
        db=db, username=username, password=password, ssl=ssl, encoding=encoding,
        timeout=timeout, name=name, read_timeout=read_timeout,
        max_reply_size=max_reply_size,
        credential_provider=credential_provider,
        parser=parser,
    )
    bound = resolve("timeout", timeout, None)
    read_bound = resolve("read_timeout", read_timeout, READ_TIMEOUT)
    parsed = parse_address(address).with_defaults(
        db=db, username=username, password=password, encoding=encoding,
        timeout=bound, name=name,
    )
    if parsed.timeout is not None:
        resolve("timeout", parsed.timeout, None)
    elif timeout is DEFAULT:
        parsed = replace(parsed, timeout=CONNECT_TIMEOUT)
    if credential_provider is not None:
        parsed = await _provided(parsed, credential_provider)
    use_ssl = resolve_tls([parsed], ssl)
    if parsed.db is not None:
        check_db(parsed.db)
    check_class("connection_cls", connection_cls, RedisConnection)
    cls = connection_cls or RedisConnection
    loop = asyncio.get_running_loop()
    conn = cls(
        parsed, encoding=parsed.encoding, parser=parser, loop=loop, read_timeout=read_bound,
        max_reply_size=max_reply_size,
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
        raise ConnectError.from_os_error(
            f"cannot connect to {conn._address_text}: {exc.strerror or exc}", exc
        ) from exc
    except (UnicodeError, ValueError) as exc:  # a host the resolver cannot take
        # Connected: then the handshake raised, which is not a connect error.
        opened = conn._writer.transport is not None
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


async def _provided(address: ServerAddress, provider: CredentialProvider) -> ServerAddress:
    """``address`` with the provider's credentials (asked within its timeout)."""
    username, password = await get_credentials(provider, address.timeout)
    return replace(address, username=username, password=password)


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
