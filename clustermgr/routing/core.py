"""The routing core under ClusterPool and SentinelPool: fast path, one retry path, the rest.

A routed pool (:class:`Router`) answers three questions of its own -- where a
command goes (:meth:`Router._route`), how to wait for a route
(:meth:`Router._wait_route`) and which errors mean what
(:attr:`Router.ERROR_ACTIONS`) -- and gets everything else from here:

* the fast path (:meth:`Router._send`): the command, classified once into a
  :class:`Classified`, goes to the node pool's ``execute``; the caller gets
  that pool's own future. The :class:`Classified` is the error hook on it,
  so a redirect or a transient failure is retried *into the same future*: no
  second future, no task, no extra loop turn while nothing goes wrong;
* one retry path (:meth:`Router._retry_loop`) with one :class:`Budget`
  (deadline, failures, redirects) and one :class:`~clustermgr.backoff.Backoff`;
* one table from error type to :class:`Action` (:class:`ErrorActions`),
  declared per pool class and resolved along the exception's MRO, like the
  reply-error registry in :mod:`clustermgr.errors`;
* acquire/release with owner tracking, the task set, events and latency
  histograms shared with node pools, stats, close/wait_closed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from .._timeout import timeout as _timeout
from ..abc import AbcConnection, AbcPool
from ..address import address_text
from ..backoff import Backoff
from ..bounds import blocking_wait
from ..commands import CommandInfo
from ..connection import is_plain
from ..errors import (
    ArgumentError,
    OutcomeUnknownError,
    PoolClosedError,
    RedisError,
    ReplyTimeoutError,
    RouteError,
    TimeoutError,
)
from ..events import EventBus
from ..pool import ConnectionsPool
from ..stats import NodeStats, PoolStats
from ..tasks import Tasks, consume
from .actions import Action, Budget, ErrorActions
from .classified import Classified

__all__ = ["Classified", "Router", "plain_kind"]


def plain_kind(info: CommandInfo | None) -> bool:
    """True if every command of ``info``'s kind is plain (see
    :func:`~clustermgr.connection.is_plain`); False for unknown commands."""
    if info is None or not info.name:
        return False
    return is_plain(info.name.partition("|")[0])


class Router(AbcPool):
    """Base of the routed pools (cluster, sentinel); see the module doc.

    Subclasses set :attr:`ERROR_ACTIONS` and implement :meth:`_route`,
    :meth:`_wait_route`, :meth:`_shutdown`, :meth:`_drain` and
    :meth:`_serving`; they may refine the other ``_``-hooks.
    """

    #: Declared per class; merged along the class hierarchy into ``_actions``.
    ERROR_ACTIONS: ClassVar[Mapping[type[BaseException], Action]] = {}
    _actions: ErrorActions = ErrorActions({})
    #: ``PoolStats.kind``.
    KIND: ClassVar[str] = "routed"
    #: Options of the node (server) pools, set by the subclass.
    _pool_kwargs: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._actions = cls._actions.with_entries(cls.__dict__.get("ERROR_ACTIONS", {}))

    def __init__(
        self,
        *,
        retry_timeout: float | None,
        max_failures: int | None,
        max_redirects: int | None,
        backoff: Backoff | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._retry_timeout = retry_timeout
        self._max_failures = max_failures
        self._max_redirects = max_redirects
        self._backoff = backoff or Backoff()
        self._tasks = Tasks()
        self._acquired: dict[AbcConnection, ConnectionsPool] = {}
        #: The hot path's error hook per command kind and node pool, and whether
        #: the kind is sent through the pool's plain entry point.
        self._hooks: dict[CommandInfo, dict[ConnectionsPool, tuple[Callable[..., bool], bool]]] = {}
        self._plain_kinds: dict[CommandInfo, bool] = {}
        self._histograms: list[Callable[[Any, float], None] | None] | None = None
        #: Events of this pool and its node pools (see :mod:`clustermgr.events`).
        self.events = EventBus()

    # -- what each pool decides ------------------------------------------------

    def _lookup(self, command: bytes | str) -> CommandInfo:
        """The command's info (for unknown names, one with an empty name)."""
        raise NotImplementedError

    def _route_slot(self, slot: int) -> ConnectionsPool | None:
        """The pool a batched command of ``slot`` goes to first (None: wait for one)."""
        raise NotImplementedError

    def _batch_route(self, c: Classified) -> ConnectionsPool | None:
        """The pool a batched ``c`` is resent to after a failure (None: wait for one)."""
        return self._route(c)

    def _route(self, c: Classified) -> ConnectionsPool | None:
        """The pool ``c`` goes to now, or None while there is none."""
        raise NotImplementedError

    async def _wait_route(self, c: Classified, budget: Budget, why: str) -> None:
        """Wait (within ``budget``) until a route for ``c`` may exist."""
        raise NotImplementedError

    def _redirect(self, c: Classified, error: BaseException, ask: bool) -> ConnectionsPool:
        """The pool a MOVED/ASK ``error`` names (only pools whose table has them)."""
        raise error

    def _observe(self, c: Classified, pool: ConnectionsPool | None, error: BaseException) -> None:
        """Every retryable failure of an attempt on ``pool``, first thing (health, events)."""

    def _request_refresh(self, reason: str) -> None:
        """Ask for a new route soon, without waiting (REFRESH_LATER)."""

    async def _wait_retry(
        self, c: Classified, budget: Budget, error: BaseException, action: Action
    ) -> None:
        """Wait before ``c`` is tried again after ``error`` (BACKOFF, REFRESH_LATER).

        The default sleeps the backoff; a pool that knows when its routes
        change wakes the command then instead (at the latest after the backoff).
        """
        await self._backoff.sleep(budget.failures - 1, budget.remaining(self._loop.time()))

    def _exhausted(self, c: Classified, budget: Budget, why: str,
                   last: BaseException | None) -> BaseException:
        """The error raised when the budget is spent (default: the last error)."""
        if last is not None:
            return last
        return RouteError(f"{c.name}: no route after {why}")

    def _refuse(self, c: Classified, error: BaseException) -> BaseException:
        """The error for a write whose outcome is unknown (REFUSE); never retried."""
        return OutcomeUnknownError(
            f"{c.name} may have been applied: the connection broke after it was sent "
            f"({error}); not retried because {c.name} is not read-only"
        )

    def _closed_error(self) -> PoolClosedError:
        return PoolClosedError(f"{self!r} is closed")

    # -- the fast path ---------------------------------------------------------

    def _send_fast(
        self, pool: ConnectionsPool | None, info: CommandInfo, command: bytes | str,
        args: tuple[Any, ...], kwargs: dict[str, Any], slot: int | None,
    ) -> Awaitable[Any]:
        """The hot path: send on ``pool`` with the error hook of (``info``, ``pool``).

        ``info`` is the command's classification, made once by ``execute``;
        the hook (one per command kind and node pool, made once) carries it
        to the retry path. A plain command (:func:`~clustermgr.connection.is_plain`,
        judged once per kind) goes through the pool's ``execute_plain``, so
        no layer below looks its name up again. No allocation per command
        while nothing fails.
        """
        if pool is not None:
            per_pool = self._hooks.get(info)
            if per_pool is None:
                per_pool = self._hooks[info] = {}
            entry = per_pool.get(pool)
            if entry is None:
                entry = per_pool[pool] = (
                    partial(self._on_reply_error, info, pool),
                    pool.takes_plain and self._plain_kind(info),
                )
            hook, plain = entry
            try:
                if plain:
                    return pool.execute_plain(command, args, on_error=hook, **kwargs)
                return pool.execute(command, *args, on_error=hook, **kwargs)
            except RedisError as exc:
                if self._actions.of_type(type(exc)) is Action.FAIL:
                    raise
                error: BaseException | None = exc
        else:
            error = None
        c = Classified(self, command, args, kwargs, info if info.name else None, slot)
        if error is not None:
            c.pool = pool
            self._observe(c, pool, error)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._start_retry(c, error, future)
        return future

    def _plain_kind(self, info: CommandInfo) -> bool:
        """:func:`plain_kind`, judged once per command kind (a dict hit after that)."""
        plain = self._plain_kinds.get(info)
        if plain is None:
            plain = self._plain_kinds[info] = plain_kind(info)
        return plain

    def _on_reply_error(
        self, info: CommandInfo, pool: ConnectionsPool, future: asyncio.Future[Any],
        error: BaseException, command: Any, args: tuple[Any, ...], encoding: str | None,
    ) -> bool:
        """The node pool's error hook for the hot path (see :meth:`_send_fast`)."""
        if self._closed or future.done():
            return False
        if self._actions.of_type(type(error)) is Action.FAIL:
            return False
        c = Classified(self, command, args, {"encoding": encoding},
                       info if info.name else None, self._slot_of(info, args))
        c.pool = pool
        return self._on_error(c, future, error)

    def _slot_of(self, info: CommandInfo, args: tuple[Any, ...]) -> int | None:
        """The slot ``execute`` computed for ``args`` (from the info, no lookup)."""
        return None

    def _send(self, c: Classified, pool: ConnectionsPool | None) -> Awaitable[Any]:
        """Send ``c`` on ``pool``; the caller's future is the pool's own.

        Without a pool, or when the pool refuses at once, the command goes to
        the retry path (a task resolving a fresh future).
        """
        error: BaseException | None = None
        if pool is not None:
            c.pool = pool
            info = c.info
            try:
                if info is not None and pool.takes_plain and self._plain_kind(info):
                    return pool.execute_plain(c.command, c.args, on_error=c, **c.kwargs)
                return pool.execute(c.command, *c.args, on_error=c, **c.kwargs)
            except RedisError as exc:
                if self._actions.of_type(type(exc)) is Action.FAIL:
                    raise
                self._observe(c, pool, exc)
                error = exc
        future: asyncio.Future[Any] = self._loop.create_future()
        self._start_retry(c, error, future)
        return future

    def _on_error(self, c: Classified, future: asyncio.Future[Any], error: BaseException) -> bool:
        if self._closed or future.done():
            return False
        action = self._actions.action(error, c.readonly)
        if action is Action.FAIL:
            return False
        self._observe(c, c.pool, error)
        if action is Action.REFUSE:
            refused = self._refuse(c, error)
            if refused is error:
                return False
            refused.__cause__ = error
            future.set_exception(refused)
            return True
        self._start_retry(c, error, future)
        return True

    # -- the retry path --------------------------------------------------------

    def _budget(self, error: BaseException | None = None) -> Budget:
        """A command's budget, counted from when it was issued.

        After a reply stall (``error`` caused by a
        :class:`~clustermgr.errors.ReplyTimeoutError`) the command had been
        waiting at most as long as its connection was silent: that time is
        spent already, so ``retry_timeout`` bounds its whole life.
        """
        start = self._loop.time()
        cause = error.__cause__ if error is not None else None
        if isinstance(cause, ReplyTimeoutError):
            start -= cause.silent_for
        return Budget(start, self._retry_timeout, self._max_failures, self._max_redirects)

    def _start_retry(
        self, c: Classified, error: BaseException | None, future: asyncio.Future[Any],
        budget: Budget | None = None,
    ) -> None:
        task = self._tasks.spawn(self._retry(c, error, future, budget or self._budget(error)))
        future.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
        task.add_done_callback(partial(self._retry_ended, future))

    def _retry_ended(self, future: asyncio.Future[Any], task: asyncio.Task[None]) -> None:
        """Whatever ended the retry task (a cancel before its first step, an error
        :meth:`_retry` did not catch) reaches the caller's future."""
        if future.done():
            return
        error = None if task.cancelled() else task.exception()
        future.set_exception(error if error is not None else self._closed_error())

    async def _retry(
        self, c: Classified, error: BaseException | None, future: asyncio.Future[Any],
        budget: Budget,
    ) -> None:
        try:
            result = await self._retry_loop(c, error, budget)
        except asyncio.CancelledError:
            if not future.done():
                future.set_exception(self._closed_error())
            raise
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    async def _retry_loop(
        self, c: Classified, error: BaseException | None, budget: Budget
    ) -> Any:
        """Resend ``c`` until it gets a reply or ``budget`` is spent; one loop for all."""
        loop = self._loop
        last = error
        while True:
            target: ConnectionsPool | None = None
            asking = False
            if error is None:
                await self._wait_route(c, budget, "no route")
            else:
                budget.failures += 1
                action = self._actions.action(error, c.readonly)
                if getattr(error, "may_have_executed", False):
                    budget.unknown = True
                if action is Action.FAIL:
                    raise error
                if self._closed:
                    raise self._closed_error() from error
                if action is Action.REFUSE:
                    raise self._refuse(c, error) from error
                if action is Action.MOVED or action is Action.ASK:
                    budget.redirects += 1
                    asking = action is Action.ASK
                    target = self._redirect(c, error, asking)
                elif action is Action.REFRESH:
                    await self._wait_route(c, budget, type(error).__name__)
                else:  # BACKOFF, REFRESH_LATER
                    if action is Action.REFRESH_LATER:
                        self._request_refresh(type(error).__name__)
                    await self._wait_retry(c, budget, error, action)
            why = budget.spent(loop.time())
            if why is not None:
                raise self._exhausted(c, budget, why, last)
            if target is None:
                target = self._route(c)
                if target is None:
                    error = None
                    continue
            c.pool = target
            try:
                return await self._attempt(target, c, asking, budget)
            except RedisError as exc:
                if self._actions.of_type(type(exc)) is Action.FAIL:
                    raise
                self._observe(c, target, exc)
                error = last = exc

    async def _attempt(
        self, pool: ConnectionsPool, c: Classified, asking: bool, budget: Budget
    ) -> Any:
        """One attempt, cut when the budget's deadline passes (the command may have run).

        A blocking command (BLPOP, XREAD BLOCK, ...) gets its own timeout on
        top of the budget; one that waits forever (timeout 0) is not cut.
        """
        remaining = budget.remaining(self._loop.time())
        info = c.info
        if remaining is not None and info is not None and info.is_blocking:
            wait = blocking_wait(info.name.upper().encode(), c.args)
            if wait is not None:
                remaining = None if wait == math.inf else remaining + wait
        if remaining is None:
            return await self._send_once(pool, c, asking)
        try:
            async with _timeout(remaining):
                return await self._send_once(pool, c, asking)
        except RedisError:
            raise
        except asyncio.TimeoutError:
            budget.unknown = True
            why = budget.spent(self._loop.time()) or "its deadline"
            raise self._exhausted(c, budget, why, TimeoutError(
                f"no reply from {address_text(pool.address)} before the deadline",
                may_have_executed=True,
            )) from None

    async def _send_once(self, pool: ConnectionsPool, c: Classified, asking: bool) -> Any:
        if not asking:
            return await pool.execute(c.command, *c.args, **c.kwargs)
        # ASKING and the command back to back on one connection.
        conn = pool.get_connection()
        if conn is not None:
            conn.execute(b"ASKING").add_done_callback(consume)
            return await conn.execute(c.command, *c.args, **c.kwargs)
        conn = await pool.acquire()
        try:
            conn.execute(b"ASKING").add_done_callback(consume)
            return await conn.execute(c.command, *c.args, **c.kwargs)
        finally:
            pool.release(conn)

    # -- exclusive connections -------------------------------------------------

    def _route_exclusive(self, c: Classified) -> ConnectionsPool | None:
        """The pool an exclusive connection for ``c`` comes from (default: :meth:`_route`)."""
        return self._route(c)

    async def _acquire_routed(self, c: Classified) -> AbcConnection:
        """Take a connection of ``c``'s route for exclusive use, waiting for a route."""
        if self._closed:
            raise self._closed_error()
        budget = self._budget()
        while True:
            pool = self._route_exclusive(c)
            if pool is None:
                why = budget.spent(self._loop.time())
                if why is not None:
                    raise RouteError(f"{c.name}: no route for an exclusive connection after {why}")
                await self._wait_route(c, budget, "no route")
                budget.failures += 1
                continue
            c.pool = pool
            try:
                conn = await pool.acquire()
            except RedisError as exc:
                if self._actions.of_type(type(exc)) is Action.FAIL:
                    raise
                self._observe(c, pool, exc)
                budget.failures += 1
                if self._closed or budget.spent(self._loop.time()) is not None:
                    raise
                self._request_refresh(type(exc).__name__)
                await self._wait_retry(c, budget, exc, Action.REFRESH_LATER)
                continue
            self._acquired[conn] = pool
            return conn

    def release(self, conn: AbcConnection) -> None:
        """Give back a connection from :meth:`acquire`."""
        pool = self._acquired.pop(conn, None)
        if pool is None:
            raise ArgumentError(f"{conn!r} was not acquired from {self!r}")
        if pool.closed:
            conn.close()
            return
        pool.release(conn)

    # -- node pools: events, histograms, stats ---------------------------------

    def _serving(self) -> Iterable[ConnectionsPool]:
        """The node pools in use now."""
        raise NotImplementedError

    @property
    def size(self) -> int:
        """Connections open to the servers in use (summed over their pools)."""
        return sum(p.size for p in self._serving())

    @property
    def freesize(self) -> int:
        """Connections to the servers in use that are not acquired."""
        return sum(p.freesize for p in self._serving())

    @property
    def minsize(self) -> int:
        """Connections each node (server) pool keeps open."""
        minsize: int = self._pool_kwargs["minsize"]
        return minsize

    @property
    def maxsize(self) -> int:
        """Connections each node (server) pool opens at most."""
        maxsize: int = self._pool_kwargs["maxsize"]
        return maxsize

    def _forget(self, pool: ConnectionsPool) -> None:
        """Drop what the hot path keeps for a node pool that was retired."""
        for per_pool in self._hooks.values():
            per_pool.pop(pool, None)

    def _adopt(self, pool: ConnectionsPool) -> None:
        """Share this pool's event bus and latency settings with a new node pool."""
        pool.events = self.events
        for listener in self._histograms or ():
            pool.enable_latency_histogram(listener)

    def enable_latency_histogram(
        self, listener: Callable[[Any, float], None] | None = None
    ) -> None:
        """Time every command on every node pool (now and later); off by default.

        ``listener(address, seconds)``, if given, is called with each latency.
        """
        if self._histograms is None:
            self._histograms = []
        self._histograms.append(listener)
        for pool in self._serving():
            pool.enable_latency_histogram(listener)

    def _node_stats(self) -> Sequence[NodeStats]:
        return [pool.node_stats() for pool in self._serving()]

    def _stats_counters(self) -> dict[str, int]:
        return {}

    def stats(self) -> PoolStats:
        """Counters and connections of the node pools in use, plus pool-wide counters."""
        return PoolStats(self.KIND, tuple(self._node_stats()), **self._stats_counters())

    # -- lifecycle -------------------------------------------------------------

    def _shutdown(self) -> None:
        """Close what the pool opened (called once, by :meth:`close`)."""
        raise NotImplementedError

    async def _drain(self) -> None:
        """Wait until what :meth:`_shutdown` closed is gone."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the node pools, helpers and background tasks."""
        if self._closed:
            return
        self._closed = True
        self._shutdown()
        self._tasks.cancel()

    async def wait_closed(self) -> None:
        """Wait until every socket and background task is gone."""
        await self._drain()
        await self._tasks.wait()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def in_transaction(self) -> bool:
        """Always False: transactions run on acquired connections."""
        return False
