"""How a cluster pool's held commands wait on the slot map, and how failures hurry it.

A command without a route reloads the map and waits for it; one that failed
on a node is held until the map moves its slot off that node (or, after
CLUSTERDOWN, until that node says its cluster state is ok: see :mod:`.state`),
at most its backoff (after CLUSTERDOWN: its cap). A node that
refuses connections or stalls is reported down and the map polled, so its
failover is followed without waiting for the next command to fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..backoff import Backoff
from ..errors import ClusterDownError, ConnectError, ReplyTimeoutError
from ..health import describe_failure
from ..pool import ConnectionsPool
from ..routing import Action, Budget, Classified, ErrorActions
from .refresh import RefreshEngine
from .state import ClusterState
from .topology import Address

__all__ = ["MapWaits"]


class MapWaits:
    """The slot map waits and reports of one cluster pool.

    ``route(c)`` is where ``c`` goes now (None: no route); ``report(address,
    up, reason)`` records a node's health; ``state`` is told which nodes
    refused with CLUSTERDOWN and wakes their commands; ``closed()`` the
    pool's. ``actions`` tells which errors are never retried.
    """

    __slots__ = ("_actions", "_backoff", "_closed", "_current_map", "_node_timeout",
                 "_refresh", "_report", "_retry_timeout", "_route", "_state", "_time")

    def __init__(
        self,
        refresh: RefreshEngine,
        *,
        route: Callable[[Classified], ConnectionsPool | None],
        report: Callable[[Address, bool, str], None],
        state: ClusterState,
        current_map: Callable[[], object],
        closed: Callable[[], bool],
        backoff: Backoff,
        actions: ErrorActions,
        retry_timeout: float,
        node_timeout: float,
    ) -> None:
        self._refresh = refresh
        self._route = route
        self._report = report
        self._state = state
        self._current_map = current_map
        self._closed = closed
        self._backoff = backoff
        self._actions = actions
        self._retry_timeout = retry_timeout
        self._node_timeout = node_timeout
        self._time = asyncio.get_running_loop().time

    async def for_route(self, c: Classified, budget: Budget, why: str) -> None:
        """Reload the map (within ``budget``); without a route for ``c`` then, back off."""
        await self._refresh.refresh(why, budget.remaining(self._time()))
        if self._route(c) is None:
            failure = self._refresh.failure
            if failure is not None and self._actions.of_type(type(failure)) is Action.FAIL:
                # never retried (credentials, the remap): the cause, at once (the
                # reload's one error for every waiting command: no growing traceback)
                raise failure.with_traceback(None)
            await self._backoff.sleep(budget.failures, budget.remaining(self._time()))

    async def for_retry(
        self, c: Classified, budget: Budget, error: BaseException, action: Action
    ) -> None:
        """Wait for the slot map to move ``c`` off its failed node (or, after
        CLUSTERDOWN, for that node to say its cluster state is ok), at most
        the backoff (after CLUSTERDOWN: its cap, a bound on a wrong guess).

        REFRESH_LATER (node unreachable, connection lost, CLUSTERDOWN) polls
        the map every ``hold_interval`` meanwhile; BACKOFF (TRYAGAIN,
        LOADING) only wakes on reloads that happen anyway. A CLUSTERDOWN-held
        command wakes at the ``CLUSTER INFO`` of its node saying ok (asked
        beside each poll), before any map is read (see :mod:`.state`).
        """
        address = c.pool.address if c.pool is not None else None
        wake = None
        if isinstance(error, ClusterDownError) and isinstance(address, tuple):
            wake = self._state.turned_ok(address)
        delay = self._backoff.cap if wake is not None else self._backoff.delay(budget.failures - 1)
        remaining = budget.remaining(self._time())
        if budget.held_ask is not None:
            # The node a migration's ASK named did not answer: ask the source
            # again when the slot moves or any news comes (a promotion may have
            # moved the migration on), at the latest after the backoff.
            failed_on, before = self._route(c), self._current_map()
        else:
            failed_on, before = c.pool, None
        await self._refresh.hold(
            delay if remaining is None else min(delay, remaining),
            f"held ({type(error).__name__})", poll=action is Action.REFRESH_LATER,
            released=lambda: self._closed() or self._route(c) is not failed_on or (
                before is not None and self._current_map() is not before
            ),
            wake=wake,
        )

    def failed(self, pool: ConnectionsPool | None, error: BaseException) -> None:
        """An attempt on ``pool`` failed with ``error``: a node down, the map hurried."""
        address = pool.address if pool is not None else None
        if not isinstance(address, tuple):
            return
        if isinstance(error, ClusterDownError):
            self._state.refused(address)  # held until that node says ok
        elif isinstance(error, ConnectError):
            self._report(address, False, describe_failure(error))
        elif isinstance(error.__cause__, ReplyTimeoutError):
            # A paused or hung node: down (asked last by reloads), and the map
            # is polled so its failover is followed without waiting for the
            # next command to stall.
            self._report(address, False, describe_failure(error))
            self._refresh.hurry(self._retry_timeout)

    def overdue(self, address: Address) -> None:
        """Replies from ``address`` are late (a paused master?): poll the map now.

        The node is asked last, so a promotion is seen and the node fenced
        before it can answer them. A slow command (> 0.5 s) looks the same:
        the node is suspected until it answers a probe.
        """
        if not self._closed():
            self._report(address, False, "replies overdue")
            self._refresh.hurry(self._retry_timeout, urgent=True)

    def request(self, reason: str) -> None:
        """A poll soon (probe first): the command is held next, polling until the map changes."""
        self._refresh.trigger(
            "clusterdown" if reason == ClusterDownError.__name__ else "connection failure",
            urgent=True,
        )

    async def refresh_now(self, reason: str) -> None:
        """Reload the slot map (coalesced, rate-limited) and wait for it."""
        await self._refresh.refresh(reason, self._node_timeout)

    async def poll_map(self, reason: str) -> None:
        """Reload the slot map at the held commands' interval and wait for it."""
        await self._refresh.refresh(reason, self._node_timeout, urgent=True)
