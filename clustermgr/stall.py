"""Stall detection (``read_timeout``): a connection whose server stopped answering.

While replies are awaited and nothing arrives for ``read_timeout`` seconds,
the connection is aborted with :class:`clustermgr.errors.TimeoutError`
(``may_have_executed=True``). The check runs a few times per timeout on a
timer, not per reply: receiving data only stamps the time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .errors import TimeoutError

__all__ = ["StallWatch"]


class StallWatch:
    """Aborts a connection when ``awaiting()`` holds and no data came for ``read_timeout``.

    ``awaiting()`` says whether replies are due now (commands written, none
    of them blocking); ``abort(error)`` drops the connection.
    """

    __slots__ = ("_abort", "_awaiting", "_handle", "_interval", "_loop", "progress_at", "timeout")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float,
        *,
        awaiting: Callable[[], bool],
        abort: Callable[[BaseException], None],
    ) -> None:
        if read_timeout <= 0:
            raise ValueError(f"read_timeout must be positive seconds, not {read_timeout}")
        self._loop = loop
        self.timeout = read_timeout
        self._interval = min(read_timeout / 4, 1.0)
        self._awaiting = awaiting
        self._abort = abort
        self._handle: asyncio.TimerHandle | None = None
        #: Loop time of the last data received (or of the first command after idling).
        self.progress_at = 0.0

    def start(self) -> None:
        """Begin checking (the connection is open)."""
        self._handle = self._loop.call_later(self._interval, self._check)

    def progress(self) -> None:
        """Data arrived, or a command was sent to an idle connection: the clock restarts."""
        self.progress_at = self._loop.time()

    def stop(self) -> None:
        """Stop checking (the connection is closing or gone)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        if self._awaiting() and self._loop.time() - self.progress_at > self.timeout:
            self._abort(TimeoutError(
                f"no reply within read_timeout={self.timeout}s", may_have_executed=True
            ))
            return
        self._handle = self._loop.call_later(self._interval, self._check)
