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
* acquire/release with owner tracking (:mod:`.owners`), the task set, events
  and latency histograms shared with node pools and sums over them
  (:mod:`.share`), stats, close/wait_closed.

The hot path's hook cache lives in :mod:`.hooks`, one attempt of the retry
path in :mod:`.attempt`, its task settling the caller's future in
:mod:`.settle`, command budgets in :class:`~.actions.Budgets`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from ..abc import AbcConnection, AbcPool
from ..backoff import Backoff
from ..commands import CommandInfo
from ..errors import (
    OutcomeUnknownError,
    PoolClosedError,
    RedisError,
    ReplyError,
    RouteError,
)
from ..events import EventBus
from ..pool import ConnectionsPool
from ..stats import NodeStats, PoolStats
from ..tasks import Tasks
from .actions import Action, Budget, Budgets, ErrorActions
from .attempt import attempt
from .classified import Classified
from .hooks import HookTable, plain_kind
from .owners import Lent
from .settle import settle_in_background
from .share import NodeShare

__all__ = ["Classified", "Router", "plain_kind"]


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
        #: A new command budget (``self._budget(error=None)``).
        self._budget = Budgets(self._loop.time, retry_timeout, max_failures, max_redirects)
        self._backoff = backoff or Backoff()
        self._tasks = Tasks()
        self._lent = Lent(self)
        #: The hot path's error hook per command kind and node pool, and whether
        #: the kind is sent through the pool's plain entry point.
        self._hooks = HookTable(lambda info, pool: partial(self._on_reply_error, info, pool))
        self._plain_kind = self._hooks.plain
        self._forget = self._hooks.forget
        #: Events of this pool and its node pools (see :mod:`clustermgr.events`).
        self.events = EventBus()
        self._share = NodeShare(self.events, lambda: self._serving())
        self._adopt = self._share.adopt

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
            entry = None if per_pool is None else per_pool.get(pool)
            if entry is None:
                entry = self._hooks.entry(info, pool)
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

    def _start_retry(
        self, c: Classified, error: BaseException | None, future: asyncio.Future[Any],
        budget: Budget | None = None,
    ) -> None:
        """Run the retry path for ``c`` in a task that settles ``future``."""
        settle_in_background(self._tasks.spawn, future, self._closed_error,
                             self._retry_loop, c, error, budget or self._budget(error))

    async def _retry_loop(
        self, c: Classified, error: BaseException | None, budget: Budget
    ) -> Any:
        """Resend ``c`` until it gets a reply or ``budget`` is spent; one loop for all."""
        loop = self._loop
        last = error
        followed: BaseException | None = None  # the ASK redirect the last attempt followed
        try:
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
                    if followed is not None and not isinstance(error, ReplyError):
                        budget.ask_unreached(followed)  # no answer from the node the ASK named
                    elif action is not Action.ASK:
                        budget.held_ask = None
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
                followed = error if asking else None
                try:
                    return await attempt(loop.time, target, c, asking, budget, self._exhausted)
                except RedisError as exc:
                    if self._actions.of_type(type(exc)) is Action.FAIL:
                        raise
                    self._observe(c, target, exc)
                    error = last = exc
        finally:
            # The errors' tracebacks keep this frame: drop them, no cycle for the collector.
            error = last = followed = None

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
            self._lent.add(conn, pool)
            return conn

    def release(self, conn: AbcConnection) -> None:
        """Give back a connection from :meth:`acquire`."""
        self._lent.release(conn)

    # -- node pools: events, histograms, stats ---------------------------------

    def _serving(self) -> Iterable[ConnectionsPool]:
        """The node pools in use now."""
        raise NotImplementedError

    @property
    def size(self) -> int:
        """Connections open to the servers in use (summed over their pools)."""
        return self._share.size()

    @property
    def freesize(self) -> int:
        """Connections to the servers in use that are not acquired."""
        return self._share.freesize()

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

    def enable_latency_histogram(
        self, listener: Callable[[Any, float], None] | None = None
    ) -> None:
        """Time every command on every node pool (now and later); off by default.

        ``listener(address, seconds)``, if given, is called with each latency.
        """
        self._share.enable_latency_histogram(listener)

    def _node_stats(self) -> Sequence[NodeStats]:
        return self._share.node_stats()

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
