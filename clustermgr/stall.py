"""Stall detection (``read_timeout``): a connection whose server stopped answering.

While replies are due and no whole reply completes for ``read_timeout``
seconds (bytes of an unfinished reply do not count: a server dribbling one
reply is stalled too),
the connection is aborted with :class:`clustermgr.errors.ReplyTimeoutError`
(``may_have_executed=True``). Replies of blocking commands are due once their
own timeout has passed (see :func:`clustermgr.bounds.blocking_wait`). The
check runs a few times per timeout on a timer, not per reply: a chunk that
completes replies only stamps the time.

An :class:`Overdue` hook, if given, is told once per silent spell when replies
have been due and none completed for ``Overdue.after`` seconds (well before
``read_timeout``): the cluster pool uses it to start polling the slot map, so
a frozen master's failover is followed before the old master can answer
(see ``docs/failure-semantics.md``). The check then runs every ``after``
seconds at most; completing replies still only stamps the time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from .bounds import check_interval
from .errors import ReplyTimeoutError

__all__ = ["Overdue", "StallWatch"]


@dataclass(frozen=True)
class Overdue:
    """Call ``call()`` when replies are due and none came for ``after`` seconds."""

    after: float
    call: Callable[[], None]

    def __post_init__(self) -> None:
        if self.after <= 0:
            raise ValueError(f"Overdue.after must be positive seconds, not {self.after}")


class StallWatch:
    """Aborts a connection when replies are due and none completed for ``read_timeout``.

    ``due_since()`` is the loop time from which replies are due (0.0: as soon
    as commands are written; later while a blocking command may still wait
    on the server), or None when none is due; ``abort(error)`` drops the
    connection.
    """

    __slots__ = (
        "_abort", "_due_since", "_handle", "_interval", "_loop", "_overdue", "_told",
        "progress_at", "timeout",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float,
        *,
        due_since: Callable[[], float | None],
        abort: Callable[[BaseException], None],
    ) -> None:
        if read_timeout <= 0:
            raise ValueError(f"read_timeout must be positive seconds, not {read_timeout}")
        self._loop = loop
        self.timeout = read_timeout
        self._interval = check_interval(read_timeout)
        self._overdue: Overdue | None = None
        self._told = False  # the overdue hook was called for the current silence
        self._due_since = due_since
        self._abort = abort
        self._handle: asyncio.TimerHandle | None = None
        #: Loop time of the last whole reply received (or of the first command after idling).
        self.progress_at = 0.0

    def start(self) -> None:
        """Begin checking (the connection is open)."""
        self._handle = self._loop.call_later(self._interval, self._check)

    def watch_overdue(self, overdue: Overdue) -> None:
        """Also tell ``overdue`` (once per silence) when replies are late by ``overdue.after``."""
        self._overdue = overdue
        self._interval = min(self._interval, overdue.after)
        if self._handle is not None:  # the next check comes at the new pace
            self._handle.cancel()
            self._handle = self._loop.call_later(self._interval, self._check)

    def progress(self) -> None:
        """A whole reply arrived, or a command went to an idle connection: the clock restarts."""
        self.progress_at = self._loop.time()

    def stop(self) -> None:
        """Stop checking (the connection is closing or gone)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        due = self._due_since()
        if due is not None:
            silent_for = self._loop.time() - max(self.progress_at, due)
            if silent_for > self.timeout:
                self._abort(ReplyTimeoutError(
                    f"no reply within read_timeout={self.timeout}s", silent_for=silent_for
                ))
                return
            overdue = self._overdue
            if overdue is not None:
                if silent_for <= overdue.after:
                    self._told = False
                elif not self._told:
                    self._told = True
                    overdue.call()
        elif self._told:
            self._told = False
        self._handle = self._loop.call_later(self._interval, self._check)
