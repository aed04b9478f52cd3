"""The connections of one pool: shared, lent out, being reset, and who waits for one.

:class:`ConnectionSet` is the bookkeeping under
:class:`~clustermgr.pool.ConnectionsPool`: which connections are free to
share (:meth:`~ConnectionSet.pick`, rotating, growing the set when every
one is busy), which are lent for exclusive use (:meth:`~ConnectionSet.acquire`,
FIFO waiters, ``acquire_timeout``) and what happens when one comes back
(:meth:`~ConnectionSet.release`, under the hand-back contract of
:mod:`clustermgr.handback`: clean, reset first, or closed), and runs the
commands that need a lent connection (blocking ones, pool-wide SELECT/AUTH).
It opens connections only through the ``connect`` callable it is given.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._timeout import timeout as _timeout
from .abc import AbcConnection
from .connection import RedisConnection
from .errors import ArgumentError, PoolClosedError, TimeoutError
from .handback import Action, KnownState, judge, restore
from .stats import Counters

__all__ = ["ConnectionSet"]

logger = logging.getLogger("clustermgr.pool")

# Above this many replies outstanding on every free connection, open another.
_GROW_AT_IN_FLIGHT = 64
# A released connection whose reset is not confirmed within this many seconds is closed.
_RESET_TIMEOUT = 2.0


class ConnectionSet:
    """Free, lent and resetting connections of one pool, and the callers waiting.

    ``connect()`` opens a connection ready for use (the pool's address,
    options and on-connect checks); ``known()`` is the state a returned
    connection must be in to be shared again; ``spawn(coro)`` runs a task in
    the pool's task set; ``on_exhausted()`` is called when a caller has to
    wait for a connection. ``describe`` names the server in messages.
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[RedisConnection]],
        known: Callable[[], KnownState],
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
        on_exhausted: Callable[[], None],
        counters: Counters,
        describe: str,
        maxsize: int,
        acquire_timeout: float | None,
    ) -> None:
        self._connect = connect
        self._known = known
        self._spawn = spawn
        self._on_exhausted = on_exhausted
        self._counters = counters
        self._describe = describe
        self._maxsize = maxsize
        self._acquire_timeout = acquire_timeout
        #: Connections to share (``execute``), in rotation order.
        self.free: deque[RedisConnection] = deque()
        #: Every open connection of the set (free, lent or resetting).
        self.all: set[RedisConnection] = set()
        self._used: set[RedisConnection] = set()
        self._resetting: set[RedisConnection] = set()  # released, reset not yet confirmed
        self._connecting = 0
        self._filling = asyncio.Lock()
        self._waiters: deque[asyncio.Future[RedisConnection]] = deque()
        self._closing = False

    # -- opening ----------------------------------------------------------

    async def _open(self) -> RedisConnection:
        conn = await self._connect()
        self.all.add(conn)
        return conn

    async def _open_counted(self) -> RedisConnection:
        self._connecting += 1
        try:
            return await self._open()
        finally:
            self._connecting -= 1

    async def _open_checked(self) -> RedisConnection:
        """A new connection whose first reply proves it usable.

        A server at ``maxclients`` accepts the socket, sends an error and
        closes it: that error (:class:`~clustermgr.errors.MaxClientsError`)
        is raised here instead of a dead connection joining the pool.
        """
        conn = await self._open()
        try:
            await conn.execute(b"PING", encoding=None)
        except BaseException:
            self.all.discard(conn)
            conn.close()
            await conn.wait_closed()
            raise
        return conn

    async def _grow(self) -> None:
        # _connecting was raised by the caller, so that one tick spawns one growth.
        try:
            conn = await self._open()
        except Exception as exc:  # background growth; callers are still served
            logger.debug("could not add a connection to %s: %s", self._describe, exc)
            return
        finally:
            self._connecting -= 1
        self._put_free(conn)

    def _put_free(self, conn: RedisConnection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._used.add(conn)
                waiter.set_result(conn)
                return
        self.free.append(conn)

    async def fill(self, minsize: int) -> None:
        """Open connections until ``minsize`` are open, each checked by a reply.

        Raises the first failure (ConnectError, AuthError, MaxClientsError, ...).
        """
        async with self._filling:  # a second fill waits for the first, then tops up
            missing = minsize - self.size
            if missing <= 0:
                return
            self._connecting += missing  # counted in ``size`` until free
            try:
                results = await asyncio.gather(
                    *(self._open_checked() for _ in range(missing)), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, RedisConnection):
                        self._put_free(result)
            finally:
                self._connecting -= missing
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    # -- shared use -------------------------------------------------------

    def pick(self) -> RedisConnection | None:
        """A free connection to send a command on now (rotating), or None."""
        free = self.free
        while free:
            conn = free[0]
            if conn._closing:
                free.popleft()
                self.all.discard(conn)
                continue
            if len(free) > 1:
                free.rotate(-1)
            if (
                len(conn._waiters) > _GROW_AT_IN_FLIGHT
                and not self._connecting
                and self.size < self._maxsize
                and not self._closing
            ):
                self._connecting += 1
                self._spawn(self._grow())
            return conn
        return None

    def take_idle(self) -> RedisConnection | None:
        """Remove a free connection with no reply pending from the set, or None.

        For pub/sub (as aioredis 1.x's pool took one of its connections):
        a SUBSCRIBE on it is written at once instead of after a connect.
        """
        if self._closing:
            return None
        for conn in self.free:
            if not conn.closed and not conn.in_flight:
                self.free.remove(conn)
                self.all.discard(conn)
                return conn
        return None

    # -- exclusive use ----------------------------------------------------

    async def acquire(self) -> RedisConnection:
        """Take a connection for exclusive use; waits (FIFO) while all are taken."""
        if self._closing:
            raise PoolClosedError(f"pool for {self._describe} is closed")
        free = self.free
        # Prefer an idle connection, so the exclusive user does not queue
        # behind other callers' replies.
        for _ in range(len(free)):
            conn = free.popleft()
            if conn._closing:
                self.all.discard(conn)
                continue
            if not conn._waiters or not free:
                self._used.add(conn)
                return conn
            free.append(conn)
        if self.size < self._maxsize:
            try:
                conn = await self._open_counted()
            except Exception as exc:
                self._fail_waiters(exc)
                raise
            self._used.add(conn)
            return conn
        waiter: asyncio.Future[RedisConnection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._counters.exhausted += 1
        self._on_exhausted()
        try:
            async with _timeout(self._acquire_timeout):
                return await waiter
        except asyncio.TimeoutError:
            self._counters.error("TimeoutError")
            raise TimeoutError(
                f"no connection to {self._describe} became free within "
                f"{self._acquire_timeout}s (maxsize={self._maxsize})"
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())
            raise

    def release(self, conn: AbcConnection) -> None:
        """Give back an acquired connection: shared again, reset first, or closed."""
        if not isinstance(conn, RedisConnection) or conn not in self._used:
            raise ArgumentError(f"{conn!r} was not acquired from this pool")
        self._used.discard(conn)
        verdict = judge(conn.state, self._known())
        if verdict.action is Action.CLEAN and not self._closing:
            self._put_free(conn)
        elif verdict.action is Action.RESET and not self._closing:
            logger.debug("resetting %r before reuse: %s", conn, verdict.reason)
            self._resetting.add(conn)
            self._spawn(self._reset(conn))
        else:
            self.discard(conn)

    async def _reset(self, conn: RedisConnection) -> None:
        clean = False
        try:
            clean = await restore(conn, self._known(), timeout=_RESET_TIMEOUT)
        finally:
            self._resetting.discard(conn)
            if clean and not self._closing:
                self._put_free(conn)
            else:
                self.discard(conn)

    def discard(self, conn: RedisConnection) -> None:
        """Close a connection that must not be shared again; a waiter may take its place."""
        conn.close()
        self.all.discard(conn)
        self._spawn(conn.wait_closed())
        if self._waiters and not self._closing:
            self._spawn(self._replace_for_waiter())

    async def _replace_for_waiter(self) -> None:
        try:
            conn = await self._open_counted()
        except Exception as exc:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    break
            self._fail_waiters(exc)
            return
        self._put_free(conn)

    def demote_pending(self, grace: float) -> int:
        """Demote every connection with replies pending (see ``ConnectionsPool.fence``)."""
        pending = [conn for conn in self.all if conn.in_flight]
        for conn in pending:
            conn.demote(grace)
        return len(pending)

    def _fail_waiters(self, exc: Exception) -> None:
        """After a failed open with nothing open or opening, no connection will
        come back for the waiters: each gets the failure instead of waiting forever."""
        if self.all or self._connecting:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)

    # -- commands on lent connections ----------------------------------------

    async def run_batch_exclusive(
        self, commands: Sequence[Sequence[Any]], kwargs: dict[str, Any]
    ) -> list[Any]:
        """Run ``commands`` as one batch on an acquired connection."""
        conn = await self.acquire()
        try:
            return await conn.execute_batch(commands, **kwargs)
        finally:
            self.release(conn)

    async def run_exclusive(
        self,
        future: asyncio.Future[Any],
        command: bytes | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        encoding: str | None,
    ) -> None:
        """Run one command on an acquired connection and resolve ``future``.

        ``encoding`` is the pool's default reply codec (for ``on_error``).
        A failure to get a connection goes through the caller's ``on_error``
        hook like any other connection error (the command was not sent). A
        caller who gives up (cancels ``future``) cancels the command: a
        blocking one then closes its connection, so the server never serves
        it to nobody. The reply is copied to ``future`` by a done callback (not
        when this task resumes); a reply that still loses that race is logged.
        """
        try:
            conn = await self.acquire()
        except (Exception, asyncio.CancelledError) as exc:  # every failure reaches ``future``
            if isinstance(exc, asyncio.CancelledError):
                exc = PoolClosedError(f"pool for {self._describe} was closed")
            on_error = kwargs.get("on_error")
            encoding = kwargs.get("encoding", encoding)
            if future.done() or (
                on_error is not None and on_error(future, exc, command, args, encoding)
            ):
                return
            future.set_exception(exc)
            return
        try:
            if future.done():  # the caller gave up while waiting: nothing is sent
                return
            try:
                reply = conn.execute(command, *args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
                return
            future.add_done_callback(functools.partial(_cancel_with, reply))
            reply.add_done_callback(functools.partial(_settle, future, command))
            await asyncio.wait((reply,))  # its outcome goes to ``future`` by _settle
        finally:
            self.release(conn)

    async def on_free(
        self, command: bytes, *args: Any
    ) -> tuple[list[Any], list[RedisConnection]]:
        """Run ``command`` on every free connection (one opened if none); replies or errors."""
        conns = [conn for conn in self.free if not conn.closed]
        borrowed = None if conns else await self.acquire()
        if borrowed is not None:
            conns = [borrowed]
        try:
            results = await asyncio.gather(
                *(conn.execute(command, *args, encoding=None) for conn in conns),
                return_exceptions=True,
            )
        finally:
            if borrowed is not None:
                self.release(borrowed)
        return results, conns

    # -- closing ----------------------------------------------------------

    async def clear(self) -> None:
        """Close every free connection (acquired ones close when released)."""
        conns = list(self.free)
        self.free.clear()
        for conn in conns:
            conn.close()
            self.all.discard(conn)
        await asyncio.gather(*(c.wait_closed() for c in conns))

    def close(self, error: PoolClosedError) -> None:
        """Fail every waiter with ``error`` and close every connection."""
        self._closing = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
        for conn in list(self.all):
            conn.close()

    def forget(self) -> None:
        """Drop every connection (after close, once they are closed)."""
        self.free.clear()
        self.all.clear()

    # -- numbers ----------------------------------------------------------

    @property
    def size(self) -> int:
        """Connections open or opening."""
        return len(self.free) + len(self._used) + len(self._resetting) + self._connecting

    @property
    def waiting(self) -> int:
        """Callers waiting in :meth:`acquire`."""
        return sum(1 for w in self._waiters if not w.done())

    @property
    def in_flight(self) -> int:
        """Commands sent or queued on the connections, replies not yet in."""
        return sum(conn.in_flight for conn in self.all)


def _cancel_with(reply: asyncio.Future[Any], future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        reply.cancel()


def _settle(future: asyncio.Future[Any], command: Any, reply: asyncio.Future[Any]) -> None:
    """Copy ``reply``'s outcome to the caller's ``future``."""
    if reply.cancelled():
        if not future.done():
            future.set_exception(PoolClosedError("the pool was closed"))
        return
    error = reply.exception()
    if future.done():
        if error is None and future.cancelled() and reply.result() is not None:
            logger.warning("the reply to %r arrived as its caller gave up; dropped", command)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(reply.result())
