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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .abc import AbcConnection, AbcPool
from .address import ServerAddress, check_db, parse_address
from .bounds import CONNECT_TIMEOUT, DEFAULT, READ_TIMEOUT, Default, resolve
from .connection import SPECIAL_COMMANDS, RedisConnection
from .connset import ConnectionSet
from .credentials import CredentialProvider
from .errors import (
    PoolClosedError,
    RouteError,
)
from .events import EventBus, PoolExhausted
from .options import check_class, check_options
from .poolconnect import OnConnect, PoolConnector
from .poolstate import PoolState
from .protocol import BLOCKING_COMMANDS, case_variants, is_blocking, lookup_command
from .pubsub import PUBSUB_COMMANDS
from .pubsubreport import PubSubReport
from .replybound import DEFAULT_MAX_REPLY_SIZE
from .stall import Overdue
from .stats import Counters, LatencyHistogram, NodeStats, PoolStats, timing
from .subscriptions import PubSubLink, SubscriptionSet, SubscriptionViews
from .tasks import failed
from .tlsopts import resolve_tls

__all__ = ["ConnectionsPool", "create_pool"]

# Connection-state commands that make no sense on a shared connection.
_EXCLUSIVE_ONLY = case_variants("MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT")
# Every command execute() or the connection must look at, in one table: a
# plain command costs a single failed lookup, on the way to the connection's
# execute_plain (which does not look again).
_SPECIAL = {
    **SPECIAL_COMMANDS,
    **_EXCLUSIVE_ONLY,
    **case_variants(*(name.decode() for name in PUBSUB_COMMANDS)),
    **BLOCKING_COMMANDS,
}


def _keeps_plain(cls: type[Any], base: type[Any]) -> bool:
    """False if ``cls`` overrides ``execute`` (``execute_batch``) but not
    ``execute_plain`` (``execute_plain_batch``): the plain entry points would
    skip the override, so callers use the checked ones."""
    return all(
        getattr(cls, checked) is getattr(base, checked)
        or getattr(cls, plain) is not getattr(base, plain)
        for checked, plain in (("execute", "execute_plain"),
                               ("execute_batch", "execute_plain_batch"))
    )


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
        overdue: Overdue | None = None,
    ) -> None:
        """``overdue`` (:class:`~clustermgr.stall.Overdue`): told when a connection's
        replies are late by ``overdue.after`` (a cluster pool polls its map then)."""
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
        parsed = parse_address(address).with_defaults(
            db=db, username=username, password=password, encoding=encoding,
            timeout=connect_bound, name=name,
        )
        self._minsize = minsize
        self._maxsize = maxsize
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counters = Counters()
        self._connector = PoolConnector(
            parsed, ssl=resolve_tls([parsed], ssl), parser=parser, connection_cls=connection_cls,
            read_timeout=resolve("read_timeout", read_timeout, READ_TIMEOUT),
            provider=credential_provider, max_reply_size=max_reply_size, on_connect=on_connect,
            counters=self._counters, closing=lambda: self._closing, overdue=overdue,
        )
        self._conns = ConnectionSet(
            connect=self._connector.create_gated, known=lambda: self._connector.known,
            spawn=self._spawn,
            on_exhausted=self._exhausted, counters=self._counters,
            describe=self._address_text, maxsize=maxsize, acquire_timeout=acquire_timeout,
        )
        # The hot path's one call: a bound method in the instance dict.
        self._pick = self._conns.pick
        # Plain commands go to the connection's execute_plain (no second lookup).
        self._plain_conns = _keeps_plain(connection_cls or RedisConnection, RedisConnection)
        #: True if :meth:`execute_plain` (:meth:`execute_plain_batch`) is :meth:`execute`
        #: (:meth:`execute_batch`) minus the name lookups: routers use them then.
        self.takes_plain = self._plain_conns and _keeps_plain(type(self), ConnectionsPool)
        # Pub/sub: the subscriptions we want, kept on one reconnecting connection.
        report = PubSubReport(self, counters=self._counters, describe=self._address_text,
                              subscriptions=lambda: self._subscription_set)
        self._pubsub = PubSubLink(
            connect=self._connector.create, spawn=self._spawn, take=self._conns.take_idle,
            describe=f"pool for {self._address_text}", reconnect_delay=reconnect_delay,
            on_lost=report.lost, on_restored=report.restored,
        )
        self._state = PoolState(parsed.db or 0, self._conns, self._connector, self._spawn)
        #: Called after the pub/sub connection was re-established and resubscribed.
        self.on_resubscribed: Callable[[ConnectionsPool, float], None] | None = None
        #: Called when the pub/sub connection of established subscriptions drops.
        self.on_pubsub_lost: Callable[[ConnectionsPool, BaseException | None], None] | None = None
        #: Events of this pool (a cluster or sentinel pool shares its own bus here).
        self.events = EventBus()
        self._latency: LatencyHistogram | None = None

    # -- connections ------------------------------------------------------

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
        if special is None:
            conn = self._pick()
            if conn is not None:
                if self._plain_conns:
                    return conn.execute_plain(command, args, **kwargs)
                return conn.execute(command, *args, **kwargs)
        else:
            if special in PUBSUB_COMMANDS:
                return self.execute_pubsub(command, *args)
            if special in _EXCLUSIVE_ONLY:
                raise RouteError(
                    f"{command!r} changes connection state and cannot run on a shared "
                    "connection: use `async with pool.get() as conn` (or pool.select() "
                    "for SELECT)"
                )
            if not is_blocking(command, args):
                conn = self._pick()
                if conn is not None:
                    return conn.execute(command, *args, **kwargs)
        return self._run_exclusive(command, args, kwargs)

    def execute_plain(self, command: bytes | str, args: tuple[Any, ...], **kwargs: Any
                      ) -> Awaitable[Any]:
        """:meth:`execute` for a command its caller classified as plain
        (:func:`~clustermgr.connection.is_plain`): nothing looks its name up again.

        ``args`` is the argument tuple; ``kwargs`` are those of
        :meth:`RedisConnection.execute`. Routers call it once they classified
        the command (see :attr:`takes_plain`).
        """
        if self._closing:
            raise PoolClosedError(f"pool for {self._address_text} is closed")
        conn = self._pick()
        if conn is not None:
            if self._plain_conns:
                return conn.execute_plain(command, args, **kwargs)
            return conn.execute(command, *args, **kwargs)
        return self._run_exclusive(command, args, kwargs)

    def _run_exclusive(
        self, command: bytes | str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        """Run the command on a connection of its own (blocking, or none open yet)."""
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

    def execute_plain_batch(
        self, commands: Sequence[Sequence[Any]], **kwargs: Any
    ) -> Awaitable[list[Any]]:
        """:meth:`execute_batch` for commands their caller checked already (see
        :meth:`RedisConnection.execute_plain_batch`): none blocks, none is looked up again."""
        if self._closing:
            raise PoolClosedError(f"pool for {self._address_text} is closed")
        conn = self._pick()
        if conn is not None and self._plain_conns:
            return conn.execute_plain_batch(commands, **kwargs)
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
        latency = self._latency
        if latency is None:
            latency = self._latency = LatencyHistogram()
            cls = type(self)
            self.execute = timing(latency, cls.execute, self)  # type: ignore[method-assign]
            self.execute_plain = timing(  # type: ignore[method-assign]
                latency, cls.execute_plain, self
            )
        if listener is not None:
            latency.listeners.append(functools.partial(listener, self.address))
        return latency

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
        return await self._state.select(db)

    async def auth(self, password: str, username: str | None = None) -> bool:
        """Authenticate every connection (ACL ``username`` optional); new ones use it too.

        If the server refuses, its error (AuthError) is raised and the pool
        keeps its credentials. Acquired connections re-authenticate when
        released; the pub/sub connection uses the new ones when it reconnects.
        Once started, it completes even if the caller is cancelled.
        """
        return await self._state.auth(password, username)

    async def reauthenticate(self) -> bool:
        """Ask the credential provider again and ``AUTH`` every connection with its answer.

        For rotated passwords or tokens: call it once the new credentials
        are valid and before the old ones are revoked. What :meth:`auth`
        does, with the provider's answer (without a provider: the pool's own
        credentials again, if it has any).
        """
        return await self._state.reauthenticate()

    async def clear(self) -> None:
        """Close every free connection (acquired ones close when released)."""
        await self._conns.clear()

    def fence(self, grace: float = 0.5) -> int:
        """The node was demoted: distrust the replies still due from it.

        On each connection with replies pending, a redirect or error reply
        still reaches its command (MOVED is followed), an acknowledgement
        fails it with :class:`~clustermgr.errors.ConnectionForcedCloseError`
        (``may_have_executed=True``: a demoted master's writes are lost when
        it resyncs), and what is unanswered ``grace`` seconds later fails
        the same way when the connection closes then. Idle connections stay.
        How many connections had replies pending.
        """
        return self._conns.demote_pending(grace)

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
        return self._connector.address.target

    @property
    def server_address(self) -> ServerAddress:
        """The parsed address with its options."""
        return self._connector.address

    @property
    def _address_text(self) -> str:
        return self._connector.text

    @property
    def db(self) -> int:
        """The selected database."""
        return self._state.db

    @property
    def encoding(self) -> str | None:
        """The default reply codec."""
        return self._connector.address.encoding

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
