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
    """

    period: float | None = 30.0
    min_interval: float = 0.2
    query_nodes: int = 3
    node_timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.period is not None and self.period <= 0:
            raise ValueError(f"period must be > 0 or None, got {self.period!r}")
        if self.min_interval < 0:
            raise ValueError(f"min_interval must be >= 0, got {self.min_interval!r}")
        if self.query_nodes < 1:
            raise ValueError(f"query_nodes must be >= 1, got {self.query_nodes!r}")
        if self.node_timeout <= 0:
            raise ValueError(f"node_timeout must be > 0, got {self.node_timeout!r}")


Reload = Callable[[frozenset[str]], Awaitable[None]]


class RefreshEngine:
    """Runs ``reload(reasons)`` in one background task, coalesced and rate-limited."""

    def __init__(self, reload: Reload, options: RefreshOptions) -> None:
        self._reload = reload
        self._options = options
        self._wake = asyncio.Event()
        self._reasons: set[str] = set()
        self._pending: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._last = -float("inf")
        self._hurry_until = -float("inf")
        self._closed = False
        #: Number of reloads run (for tests and metrics).
        self.reloads = 0

    def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def trigger(self, reason: str) -> asyncio.Future[None]:
        """Ask for a reload; returns a future done when a reload started after now ends."""
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_future()
        self._reasons.add(reason)
        self._wake.set()
        return self._pending

    def hurry(self, seconds: float) -> None:
        """Reload at the rate limit (``min_interval``, at least 50 ms) for ``seconds`` from now."""
        until = asyncio.get_running_loop().time() + seconds
        if until > self._hurry_until:
            self._hurry_until = until
        self.trigger("node stalled")

    async def refresh(self, reason: str, timeout: float | None = None) -> None:
        """Trigger a reload and wait for it (at most ``timeout`` seconds)."""
        if self._closed:
            return
        future = self.trigger(reason)
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
            hurried = loop.time() < self._hurry_until
            if hurried:
                wait = max(options.min_interval, 0.05)
            try:
                async with _timeout(wait):
                    await self._wake.wait()
            except asyncio.TimeoutError:
                self._reasons.add("node stalled" if hurried else "periodic")
            pause = self._last + options.min_interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            self._wake.clear()
            waiters, self._pending = self._pending, None
            reasons, self._reasons = frozenset(self._reasons), set()
            self._last = loop.time()
            try:
                await self._reload(reasons)
            except asyncio.CancelledError:
                if waiters is not None and not waiters.done():
                    waiters.cancel()
                raise
            except Exception as exc:  # the engine must survive a failed reload
                logger.warning("slot map reload (%s) failed: %s", ",".join(sorted(reasons)), exc)
            self.reloads += 1
            self._last = loop.time()
            if waiters is not None and not waiters.done():
                waiters.set_result(None)

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
