"""A pool of connections to one server.

``execute`` multiplexes: it sends the command on a free connection without
taking it out of the pool, so many callers share a few sockets, pipelined.
``acquire``/``get`` hand out a connection for exclusive use (transactions,
blocking commands). Pub/sub runs on one dedicated connection that is
reconnected with backoff and resubscribed when it drops: the same
:class:`~clustermgr.pubsub.Channel` objects keep delivering.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from ._timeout import timeout as _timeout
from .abc import AbcConnection, AbcPool
from .address import ServerAddress, check_db, parse_address
from .bounds import CONNECT_TIMEOUT, DEFAULT, READ_TIMEOUT, Default, resolve
from .connection import RedisConnection, create_connection
from .connset import ConnectionSet
from .credentials import CredentialProvider, get_credentials
from .errors import (
    PoolClosedError,
    ReplyError,
    RouteError,
    TimeoutError,
)
from .events import EventBus, PoolExhausted, PubSubDisconnected, PubSubResubscribed
from .handback import KnownState
from .options import check_class, check_options
from .protocol import BLOCKING_COMMANDS, case_variants, is_blocking, lookup_command
from .pubsub import PUBSUB_COMMANDS
from .replybound import DEFAULT_MAX_REPLY_SIZE
from .stats import Counters, LatencyHistogram, NodeStats, PoolStats, timed
from .subscriptions import PubSubLink, SubscriptionSet, SubscriptionViews
from .tasks import consume, failed
from .tlsopts import resolve_tls

__all__ = ["ConnectionsPool", "create_pool"]

pubsub_logger = logging.getLogger("clustermgr.pubsub")

OnConnect = Callable[[RedisConnection], Awaitable[None]]

# Connection-state commands that make no sense on a shared connection.
_EXCLUSIVE_ONLY = case_variants("MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT")
# Every command execute() must look at, in one table: ordinary commands cost
# a single failed lookup on the way to a shared connection.
_SPECIAL = {
    **_EXCLUSIVE_ONLY,
    **case_variants(*(name.decode() for name in PUBSUB_COMMANDS)),
    **BLOCKING_COMMANDS,
}


class ConnectionsPool(SubscriptionViews, AbcPool):
    """Connections to one server (see :func:`create_pool`)."""

    def __init__(
        self,
        address: Any,
        *,
        db: int | None = None,
        username: str | None = None,
        password: str | None = None,
        ssl: Any = None,
        encoding: str | None = None,
        minsize: int = 1,
        maxsize: int = 10,
        parser: Any = None,
        create_connection_timeout: float | Default | None = DEFAULT,
        acquire_timeout: float | None = None,
        connection_cls: type[RedisConnection] | None = None,
        name: str | None = None,
        on_connect: OnConnect | None = None,
        reconnect_delay: tuple[float, float] = (0.05, 2.0),
        read_timeout: float | Default | None = DEFAULT,
        credential_provider: CredentialProvider | None = None,
        max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
    ) -> None:
        check_options(
            db=db, username=username, password=password, ssl=ssl, encoding=encoding,
            minsize=minsize, maxsize=maxsize, create_connection_timeout=create_connection_timeout,
            acquire_timeout=acquire_timeout, name=name, on_connect=on_connect,
            reconnect_delay=reconnect_delay, read_timeout=read_timeout,
            max_reply_size=max_reply_size,
            credential_provider=credential_provider,
            parser=parser,
        )
        check_class("connection_cls", connection_cls, RedisConnection)
        connect_bound = resolve(
            "create_connection_timeout", create_connection_timeout, CONNECT_TIMEOUT
        )
        self._read_timeout = resolve("read_timeout", read_timeout, READ_TIMEOUT)
        self._address: ServerAddress = parse_address(address).with_defaults(
            db=db, username=username, password=password, encoding=encoding,
            timeout=connect_bound, name=name,
        )
        self._ssl = resolve_tls([self._address], ssl)
        self._parser = parser
        self._connection_cls = connection_cls
        self._minsize = minsize
        self._maxsize = maxsize
        self._on_connect = on_connect
        self._provider = credential_provider
        self._max_reply_size = max_reply_size
        self._db = self._address.db or 0
        self._known = KnownState(db=self._db, credentials=self._credentials())
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counters = Counters()
        self._conns = ConnectionSet(
            connect=self._create, known=lambda: self._known, spawn=self._spawn,
            on_exhausted=self._exhausted, counters=self._counters,
            describe=self._address_text, maxsize=maxsize, acquire_timeout=acquire_timeout,
        )
        # The hot path's one call: a bound method in the instance dict.
        self._pick = self._conns.pick
        # Pub/sub: the subscriptions we want, kept on one reconnecting connection.
        self._pubsub = PubSubLink(
            connect=self._create, spawn=self._spawn, take=self._conns.take_idle,
            describe=f"pool for {self._address_text}", reconnect_delay=reconnect_delay,
            on_lost=self._pubsub_lost, on_restored=self._pubsub_restored,
        )
        #: Called after the pub/sub connection was re-established and resubscribed.
        self.on_resubscribed: Callable[[ConnectionsPool, float], None] | None = None
        #: Called when the pub/sub connection of established subscriptions drops.
        self.on_pubsub_lost: Callable[[ConnectionsPool, BaseException | None], None] | None = None
        #: Events of this pool (a cluster or sentinel pool shares its own bus here).
        self.events = EventBus()
        self._latency: LatencyHistogram | None = None

    # -- connections ------------------------------------------------------

    def _credentials(self) -> tuple[str | None, str] | None:
        address = self._address
        return (address.username, address.password) if address.password else None

    async def _create(self) -> RedisConnection:
        loop = asyncio.get_running_loop()
        bound = self._address.timeout  # connect, handshake and on_connect together
        deadline = None if bound is None else loop.time() + bound
        conn = await create_connection(
            self._address, ssl=self._ssl, parser=self._parser, timeout=bound,
            connection_cls=self._connection_cls, read_timeout=self._read_timeout,
            credential_provider=self._provider,
            max_reply_size=self._max_reply_size,
        )
        if self._provider is not None:
            self._adopt_credentials(conn.state.credentials)
        try:
            if self._on_connect is not None:
                try:
                    async with _timeout(None if deadline is None else deadline - loop.time()):
                        await self._on_connect(conn)
                except asyncio.TimeoutError as exc:
                    raise TimeoutError(f"setting up a connection to {self._address_text} "
                                       f"timed out after {bound}s") from exc
        except BaseException:
            conn.close()
            await conn.wait_closed()
            raise
        if self._closing:
            conn.close()
            await conn.wait_closed()
            raise PoolClosedError(f"pool for {self._address_text} was closed")
        # What on_connect set up (READONLY on a cluster replica) is the known state.
        self._known = replace(self._known, readonly=conn.state.readonly)
        conn.stats = self._counters
        self._counters.connects += 1
        return conn

    def _adopt_credentials(self, credentials: tuple[str | None, str] | None) -> None:
        """The provider's newest answer becomes the pool's: released connections follow."""
        if credentials is not None and credentials != self._known.credentials:
            self._address = replace(
                self._address, username=credentials[0], password=credentials[1]
            )
            self._known = replace(self._known, credentials=credentials)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def fill(self) -> None:
        """Open connections until ``minsize`` are open, each checked by a reply.

        Raises the first failure (ConnectError, AuthError, MaxClientsError, ...).
        """
        await self._conns.fill(self._minsize)

    # -- AbcPool ----------------------------------------------------------

    def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Run one command on a shared connection; returns an awaitable at once.

        Blocking commands (BLPOP, XREAD BLOCK, ...) get a connection of their
        own. Transactions need :meth:`get`/:meth:`acquire`. Once closed: a
        future failed with :class:`PoolClosedError`.
        """
        if self._closing:
            return failed(PoolClosedError(f"pool for {self._address_text} is closed"))
        special = lookup_command(_SPECIAL, command)
        if special is not None:
            if special in PUBSUB_COMMANDS:
                return self.execute_pubsub(command, *args)
            if lookup_command(_EXCLUSIVE_ONLY, special) is not None:
                raise RouteError(
                    f"{command!r} changes connection state and cannot run on a shared "
                    "connection: use `async with pool.get() as conn` (or pool.select() "
                    "for SELECT)"
                )
        if special is None or not is_blocking(command, args):
            conn = self._pick()
            if conn is not None:
                return conn.execute(command, *args, **kwargs)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._spawn(self._conns.run_exclusive(future, command, args, kwargs, self.encoding))
        return future

    def execute_batch(
        self, commands: Sequence[Sequence[Any]], **kwargs: Any
    ) -> Awaitable[list[Any]]:
        """Send many commands in one write on a shared connection.

        Resolves to the replies in order, error replies as exception
        instances in place (see :meth:`RedisConnection.execute_batch`). A
        batch holding a blocking command runs on a connection of its own.
        """
        if self._closing:
            raise PoolClosedError(f"pool for {self._address_text} is closed")
        if not any(is_blocking(entry[0], tuple(entry[1:])) for entry in commands if entry):
            conn = self._pick()
            if conn is not None:
                return conn.execute_batch(commands, **kwargs)
        return self._spawn(self._conns.run_batch_exclusive(commands, kwargs))

    def get_connection(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> RedisConnection | None:
        """A free connection to share right now, or ``None`` (none open yet)."""
        if self._closing:
            return None
        return self._pick()

    async def acquire(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> RedisConnection:
        """Take a connection for exclusive use; waits (FIFO) while all are taken.

        Raises :class:`TimeoutError` after ``acquire_timeout`` seconds and
        :class:`PoolClosedError` if the pool closes meanwhile.
        """
        return await self._conns.acquire()

    def _exhausted(self) -> None:
        if self.events.active:
            self.events.emit(PoolExhausted(self.address, self.waiting, self._maxsize))

    def release(self, conn: AbcConnection) -> None:
        """Give back an acquired connection under the hand-back contract.

        A clean connection is free again at once; one left in MULTI, WATCH,
        another db or with replies pending is reset first (the reset
        confirmed before reuse); one subscribed, blocked or closed is closed
        (see :func:`clustermgr.handback.judge`).
        """
        self._conns.release(conn)

    # -- pub/sub ----------------------------------------------------------

    def execute_pubsub(self, command: bytes | str, *channels: Any) -> Awaitable[Any]:
        """(Un)subscribe on the pool's dedicated pub/sub connection.

        The first SUBSCRIBE takes an idle connection of the pool for it when
        there is one (written at once, as aioredis 1.x), else opens one.
        Subscriptions are kept as desired state (see
        :class:`~clustermgr.subscriptions.PubSubLink`): if the connection drops,
        the pool reconnects with backoff and resubscribes every channel and
        pattern; the same Channel objects keep delivering.
        """
        if self._closing:
            return failed(PoolClosedError(f"pool for {self._address_text} is closed"))
        return self._pubsub.execute(command, channels)

    def _pubsub_lost(self, cause: BaseException | None) -> None:
        reason = str(cause or "closed by the server")
        pubsub_logger.warning("pub/sub connection to %s lost (%s); resubscribing %d",
                              self._address_text, reason, self.in_pubsub)
        if self.events.active:
            subs = self._pubsub.subscriptions
            self.events.emit(PubSubDisconnected(
                self.address, subs.names("channels"), subs.names("patterns"),
                subs.names("shard_channels"), reason=reason,
            ))
        if self.on_pubsub_lost is not None:
            self.on_pubsub_lost(self, cause)

    def _pubsub_restored(self, gap: float) -> None:
        pubsub_logger.info(
            "pub/sub connection to %s back after %.0f ms; %d subscriptions restored",
            self._address_text, gap * 1000, self.in_pubsub,
        )
        self._counters.reconnects += 1
        self._counters.resubscribes += self.in_pubsub
        if self.events.active:
            subs = self._pubsub.subscriptions
            self.events.emit(PubSubResubscribed(
                self.address, subs.names("channels"), subs.names("patterns"),
                subs.names("shard_channels"), lost_at=time.time() - gap, gap_ms=gap * 1000,
            ))
        if self.on_resubscribed is not None:
            self.on_resubscribed(self, gap)

    @property
    def _subscription_set(self) -> SubscriptionSet:
        return self._pubsub.subscriptions

    # -- stats --------------------------------------------------------------

    def enable_latency_histogram(
        self, listener: Callable[[Any, float], None] | None = None
    ) -> LatencyHistogram:
        """Start timing every :meth:`execute` (off by default: no clock read per command).

        ``listener(address, seconds)``, if given, is called with each latency.
        """
        if self._latency is None:
            self._latency = LatencyHistogram()
            self.execute = self._execute_timed  # type: ignore[method-assign]
        if listener is not None:
            self._latency.listeners.append(functools.partial(listener, self.address))
        return self._latency

    def _execute_timed(self, command: bytes | str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        started = time.perf_counter()
        reply = type(self).execute(self, command, *args, **kwargs)
        assert self._latency is not None
        return timed(self._latency, reply, started)  # type: ignore[no-any-return]

    @property
    def counters(self) -> Counters:
        """This server's live counters (updated in place; see :meth:`stats` for a snapshot)."""
        return self._counters

    def node_stats(self, role: str | None = None) -> NodeStats:
        """This server's counters and connection numbers now."""
        return NodeStats.of(
            self.address, self._counters, role=role, connections_open=self.size,
            connections_free=self.freesize, waiting=self.waiting, in_flight=self.in_flight,
            latency=self._latency.snapshot() if self._latency is not None else None,
        )

    def stats(self) -> PoolStats:
        """A snapshot of the pool's numbers (see :class:`~clustermgr.stats.PoolStats`)."""
        return PoolStats("standalone", (self.node_stats(),))

    # -- state ------------------------------------------------------------

    async def select(self, db: int) -> bool:
        """Switch every connection of the pool to ``db``.

        If the server refuses ``db`` (out of range), its error is raised and
        the pool stays on its db. Acquired connections switch when released.
        Once started, the switch completes even if the caller is cancelled.
        """
        check_db(db)
        return await self._run_to_completion(self._select(db))

    async def _select(self, db: int) -> bool:
        results, conns = await self._conns.on_free(b"SELECT", db)
        refused = next((r for r in results if isinstance(r, ReplyError)), None)
        if refused is None:
            self._db = db
            self._address = replace(self._address, db=db)
            self._known = replace(self._known, db=db)
        free = self._conns.free
        for conn in conns:  # never share a connection on another db than the pool's
            if conn.db != self._db and conn in free:
                free.remove(conn)
                self._conns.discard(conn)
        if refused is not None:
            raise refused
        return True

    async def auth(self, password: str, username: str | None = None) -> bool:
        """Authenticate every connection (ACL ``username`` optional); new ones use it too.

        If the server refuses, its error (AuthError) is raised and the pool
        keeps its credentials. Acquired connections re-authenticate when
        released; the pub/sub connection uses the new ones when it reconnects.
        Once started, it completes even if the caller is cancelled.
        """
        return await self._run_to_completion(self._auth(password, username))

    async def _auth(self, password: str, username: str | None) -> bool:
        results, _ = await self._conns.on_free(
            b"AUTH", *((username, password) if username else (password,))
        )
        refused = next((r for r in results if isinstance(r, ReplyError)), None)
        if refused is not None:
            raise refused
        self._address = replace(self._address, username=username, password=password)
        self._known = replace(self._known, credentials=self._credentials())
        return True

    async def reauthenticate(self) -> bool:
        """Ask the credential provider again and ``AUTH`` every connection with its answer.

        For rotated passwords or tokens: call it once the new credentials
        are valid and before the old ones are revoked. What :meth:`auth`
        does, with the provider's answer (without a provider: the pool's own
        credentials again, if it has any).
        """
        if self._provider is not None:
            username, password = await get_credentials(self._provider)
        elif self._address.password:
            username, password = self._address.username, self._address.password
        else:
            return True
        return await self.auth(password, username)

    async def _run_to_completion(self, coro: Awaitable[bool]) -> bool:
        """Await ``coro`` in a task of the pool: cancelling the caller does not stop it.

        A pool-wide state change cut short would leave some connections
        switched and the pool's known state not: it always runs to the end.
        """
        task = self._spawn(coro)
        task.add_done_callback(consume)  # reported to the caller, if it is still there
        return await asyncio.shield(task)

    async def clear(self) -> None:
        """Close every free connection (acquired ones close when released)."""
        await self._conns.clear()

    def close(self) -> None:
        """Close the pool: every connection, the pub/sub one, and its channels."""
        if self._closing:
            return
        self._closing = True
        self._conns.close(PoolClosedError(f"pool for {self._address_text} was closed"))
        self._pubsub.close()

    async def wait_closed(self) -> None:
        """Wait until every connection and background task has finished."""
        conns = list(self._conns.all)
        await asyncio.gather(*(c.wait_closed() for c in conns), self._pubsub.wait_closed())
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._conns.forget()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    @property
    def address(self) -> tuple[str, int] | str:
        """The server's ``(host, port)`` or socket path."""
        return self._address.target

    @property
    def server_address(self) -> ServerAddress:
        """The parsed address with its options."""
        return self._address

    @property
    def _address_text(self) -> str:
        target = self._address.target
        return target if isinstance(target, str) else f"{target[0]}:{target[1]}"

    @property
    def db(self) -> int:
        """The selected database."""
        return self._db

    @property
    def encoding(self) -> str | None:
        """The default reply codec."""
        return self._address.encoding

    @property
    def minsize(self) -> int:
        """Connections kept open."""
        return self._minsize

    @property
    def maxsize(self) -> int:
        """Most connections open at once (the pub/sub connection not counted)."""
        return self._maxsize

    @property
    def size(self) -> int:
        """Connections open or opening."""
        return self._conns.size

    @property
    def freesize(self) -> int:
        """Connections not acquired."""
        return len(self._conns.free)

    @property
    def waiting(self) -> int:
        """Callers waiting in :meth:`acquire`."""
        return self._conns.waiting

    @property
    def in_transaction(self) -> bool:
        """Always False: transactions run on acquired connections."""
        return False

    @property
    def in_flight(self) -> int:
        """Commands sent or queued on the pool's connections, replies not yet in."""
        return self._conns.in_flight

    def __repr__(self) -> str:
        return (
            f"<ConnectionsPool {self._address_text} size={self.size} free={self.freesize} "
            f"pubsub={self.in_pubsub}{' closed' if self._closing else ''}>"
        )


async def create_pool(
    address: Any,
    *,
    db: int | None = None,
    username: str | None = None,
    password: str | None = None,
    ssl: Any = None,
    encoding: str | None = None,
    minsize: int = 1,
    maxsize: int = 10,
    parser: Any = None,
    create_connection_timeout: float | Default | None = DEFAULT,
    acquire_timeout: float | None = None,
    pool_cls: type[ConnectionsPool] | None = None,
    connection_cls: type[RedisConnection] | None = None,
    name: str | None = None,
    on_connect: OnConnect | None = None,
    read_timeout: float | Default | None = DEFAULT,
    lazy: bool = False,
    credential_provider: CredentialProvider | None = None,
    max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
) -> ConnectionsPool:
    """Create a :class:`ConnectionsPool` and open ``minsize`` connections.

    ``address`` takes every form :func:`create_connection` accepts. Raises
    what connecting raises (ConnectError, AuthError, TimeoutError) if the
    first connections cannot be opened. ``create_connection_timeout`` (default
    5 s) bounds connect, handshake and ``on_connect`` together;
    ``read_timeout`` (default 10 s) is passed to every connection (see
    :func:`~clustermgr.connection.create_connection`); ``None`` turns either
    off. ``acquire_timeout`` bounds waiting for a free connection (see
    :mod:`clustermgr.bounds`). With ``lazy`` nothing is opened here: the
    first command connects (and fails, typed, if the server is not up yet).
    ``credential_provider`` is asked for the username and password at every
    connect (:mod:`clustermgr.credentials`; see
    :meth:`ConnectionsPool.reauthenticate`).
    ``max_reply_size`` (default 512 MiB) bounds one reply on every connection.
    """
    check_class("pool_cls", pool_cls, ConnectionsPool)
    check_options(lazy=lazy)
    cls = pool_cls or ConnectionsPool
    pool = cls(
        address, db=db, username=username, password=password, ssl=ssl, encoding=encoding,
        minsize=minsize, maxsize=maxsize, parser=parser,
        create_connection_timeout=create_connection_timeout, acquire_timeout=acquire_timeout,
        connection_cls=connection_cls, name=name, on_connect=on_connect,
        read_timeout=read_timeout, credential_provider=credential_provider,
        max_reply_size=max_reply_size,
    )
    if lazy:
        return pool
    try:
        await pool.fill()
    except BaseException:
        pool.close()
        await pool.wait_closed()
        raise
    return pool
