"""When to reload the slot map: the one place that decides.

A :class:`RefreshEngine` reloads periodically (with jitter) and on triggers
(MOVED, ASK, connection failure, uncovered slot, unknown node, READONLY,
CLUSTERDOWN). Triggers that arrive before a reload starts are coalesced into
it; reloads are rate-limited; callers that need a fresh map wait for the next
reload instead of failing. After a node stopped answering (a reply stall),
:meth:`RefreshEngine.hurry` polls the map at the rate limit for a while, so
a failover of that node is followed without waiting for a command to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .._timeout import timeout as _timeout
from ..options import check_options

__all__ = ["RefreshEngine", "RefreshOptions"]

logger = logging.getLogger("clustermgr.cluster")


@dataclass(frozen=True)
class RefreshOptions:
    """How the slot map is kept fresh (one value object, not scattered flags).

    Attributes:
        period: seconds between periodic reloads (each jittered by +-20%);
            ``None`` turns periodic reloads off.
        min_interval: least time between two reloads (the rate limit).
        query_nodes: how many nodes to ask per reload (their views are merged).
        node_timeout: seconds to wait for one node's answer.
        hold_interval: least time between two reloads while a command is held
            waiting for a route (its node unreachable, CLUSTERDOWN) or a
            pub/sub connection is lost: the map is polled this often until
            it changes, and the held commands wake on the change (a poll
            is the cheaper ``poll`` of the engine: one node's ``CLUSTER
            INFO``, the map read only when that shows news).
    """

    period: float | None = 30.0
    min_interval: float = 0.2
    query_nodes: int = 3
    node_timeout: float = 1.0
    hold_interval: float = 0.05

    def __post_init__(self) -> None:
        check_options(
            period=self.period, min_interval=self.min_interval, query_nodes=self.query_nodes,
            node_timeout=self.node_timeout, hold_interval=self.hold_interval,
        )


Reload = Callable[[frozenset[str]], Awaitable[None]]


class RefreshEngine:
    """Runs ``reload(reasons)`` in one background task, coalesced and rate-limited."""

    def __init__(self, reload: Reload, options: RefreshOptions, poll: Reload | None = None) -> None:
        """``poll``, if given, is a cheaper reload run when only urgent triggers asked."""
        self._reload = reload
        self._poll = poll or reload
        self._routine = False  # a non-urgent trigger (or the period) asked since the last reload
        self._options = options
        self._wake = asyncio.Event()
        self._reasons: set[str] = set()
        self._pending: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._last = -float("inf")
        self._hurry_until = -float("inf")
        self._urgent_until = -float("inf")  # hurried polls come every hold_interval until
        self._closed = False
        self._urgent = False
        #: Number of reloads run (for tests and metrics).
        self.reloads = 0
        #: What the last reload raised (None once one succeeds).
        self.failure: Exception | None = None

    def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def reloaded(self) -> asyncio.Future[None]:
        """A future done when the next reload (started after now) ends; asks for none."""
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_future()
        return self._pending

    def trigger(self, reason: str, *, urgent: bool = False) -> asyncio.Future[None]:
        """Ask for a reload; returns a future done when a reload started after now ends.

        ``urgent``: something is held until the map changes; the reload may
        start ``hold_interval`` after the last one instead of ``min_interval``.
        """
        pending = self.reloaded()
        self._reasons.add(reason)
        self._urgent = self._urgent or urgent
        self._routine = self._routine or not urgent
        self._wake.set()
        return pending

    def hurry(self, seconds: float, *, urgent: bool = False) -> None:
        """Reload at the rate limit (``min_interval``, at least 50 ms) for ``seconds`` from now.

        ``urgent``: poll every ``hold_interval`` instead (replies are owed by a
        node that may be frozen: its failover must be seen within a poll)."""
        until = asyncio.get_running_loop().time() + seconds
        if until > self._hurry_until:
            self._hurry_until = until
        if urgent and until > self._urgent_until:
            self._urgent_until = until
        self.trigger("node stalled", urgent=urgent)

    async def hold(
        self, seconds: float, reason: str, *, poll: bool, released: Callable[[], bool],
        wake: asyncio.Future[None] | None = None,
    ) -> None:
        """Wait at most ``seconds`` for a reload after which ``released()`` is true,
        or for ``wake`` (if given) to be done, whichever comes first.

        ``poll``: ask for reloads meanwhile (urgent: every ``hold_interval``);
        otherwise only reloads that happen anyway end the wait early. ``wake``
        ends it also in the middle of a reload (it is waited on, never cancelled).
        """
        loop = asyncio.get_running_loop()
        wake_at = loop.time() + seconds
        while not self._closed:
            left = wake_at - loop.time()
            if left <= 0 or (wake is not None and wake.done()):
                return
            reload = self.trigger(reason, urgent=True) if poll else self.reloaded()
            await asyncio.wait(
                (reload,) if wake is None else (reload, wake), timeout=left,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if (wake is not None and wake.done()) or not reload.done() or released():
                return

    async def refresh(
        self, reason: str, timeout: float | None = None, *, urgent: bool = False
    ) -> None:
        """Trigger a reload and wait for it (at most ``timeout`` seconds); see :meth:`trigger`."""
        if self._closed:
            return
        future = self.trigger(reason, urgent=urgent)
        try:
            async with _timeout(timeout):
                await asyncio.shield(future)
        except asyncio.TimeoutError:
            return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        options = self._options
        while not self._closed:
            wait = None if options.period is None else options.period * random.uniform(0.8, 1.2)
            now = loop.time()
            hurried = now < self._hurry_until
            urgent = now < self._urgent_until
            if hurried:
                pace = min(options.hold_interval, options.min_interval) if urgent else (
                    options.min_interval
                )
                wait = max(pace, 0.05)
            try:
                async with _timeout(wait):
                    await self._wake.wait()
            except asyncio.TimeoutError:
                if hurried:  # polling after a stall: the cheaper poll will do
                    self._reasons.add("node stalled")
                    self._urgent = self._urgent or urgent
                else:
                    self._reasons.add("periodic")
                    self._routine = True
            await self._rate_limit(loop)
            self._wake.clear()
            reload = self._reload if self._routine else self._poll
            self._urgent = self._routine = False
            waiters, self._pending = self._pending, None
            reasons, self._reasons = frozenset(self._reasons), set()
            self._last = loop.time()
            try:
                await reload(reasons)
            except asyncio.CancelledError:
                if waiters is not None and not waiters.done():
                    waiters.cancel()
                raise
            except Exception as exc:  # the engine must survive a failed reload
                logger.warning("slot map reload (%s) failed: %s", ",".join(sorted(reasons)), exc)
                self.failure = exc
            else:
                self.failure = None
            self.reloads += 1
            self._last = loop.time()
            if waiters is not None and not waiters.done():
                waiters.set_result(None)

    async def _rate_limit(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until ``min_interval`` (``hold_interval`` once urgent) after the last reload."""
        options = self._options
        while True:
            interval = min(options.hold_interval, options.min_interval) if self._urgent else (
                options.min_interval
            )
            pause = self._last + interval - loop.time()
            if pause <= 0:
                return
            self._wake.clear()  # an urgent trigger while we wait shortens the wait
            try:
                async with _timeout(pause):
                    await self._wake.wait()
            except asyncio.TimeoutError:
                return

    async def close(self) -> None:
        """Stop the task; anyone waiting for a reload is released."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(None)
        self._pending = None
