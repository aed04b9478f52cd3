"""Error-to-action table and the retry budget of the routing core (pure, no I/O)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

from ..errors import ReplyTimeoutError

__all__ = ["Action", "Budget", "Budgets", "ErrorActions"]


class Action(enum.Enum):
    """What the retry path does with a failed attempt."""

    FAIL = "fail"
    """Give the error to the caller."""
    REFUSE = "refuse"
    """The command may have run and is not read-only: fail with OutcomeUnknownError."""
    MOVED = "moved"
    """Follow the redirect and remember the new owner."""
    ASK = "ask"
    """Send ``ASKING`` and the command to the node named, once."""
    BACKOFF = "backoff"
    """Try the same route again after a backoff."""
    REFRESH = "refresh"
    """The route is stale: wait for a new one, then try again."""
    REFRESH_LATER = "refresh_later"
    """Ask for a new route without waiting for it; back off and try again."""


class ErrorActions:
    """An immutable table from exception type to :class:`Action`, resolved by MRO.

    Types not in the table (nor any of their bases) map to ``FAIL``. An error
    that may have run (``may_have_executed``) maps to ``REFUSE`` unless the
    command is read-only, whatever its type: an unknown outcome is never
    retried for a write.
    """

    __slots__ = ("_cache", "_table")

    def __init__(self, table: Mapping[type[BaseException], Action]) -> None:
        self._table = dict(table)
        self._cache: dict[type[BaseException], Action] = {}

    @property
    def table(self) -> Mapping[type[BaseException], Action]:
        """The declared entries."""
        return dict(self._table)

    def with_entries(self, table: Mapping[type[BaseException], Action]) -> ErrorActions:
        """A copy with ``table`` added (its entries win)."""
        return ErrorActions({**self._table, **table})

    def of_type(self, kind: type[BaseException]) -> Action:
        """The action for an exception type (nearest declared base class)."""
        try:
            return self._cache[kind]
        except KeyError:
            pass
        action = next(
            (self._table[base] for base in kind.__mro__ if base in self._table), Action.FAIL
        )
        self._cache[kind] = action
        return action

    def action(self, error: BaseException, readonly: bool) -> Action:
        """The action for ``error`` on a command (``readonly`` or not)."""
        action = self.of_type(type(error))
        if (
            action is not Action.FAIL
            and not readonly
            and getattr(error, "may_have_executed", False)
        ):
            return Action.REFUSE
        return action

    def retryable(self) -> tuple[type[BaseException], ...]:
        """The declared types that do not map to FAIL (for ``except`` clauses)."""
        return tuple(k for k, v in self._table.items() if v is not Action.FAIL)


class Budget:
    """What one command may still spend on retries: time, failures, redirects."""

    __slots__ = ("deadline", "failures", "held_ask", "max_failures", "max_redirects",
                 "redirects", "started", "unknown")

    def __init__(
        self, now: float, timeout: float | None, max_failures: int | None,
        max_redirects: int | None,
    ) -> None:
        self.started = now
        self.deadline = None if timeout is None else now + timeout
        self.max_failures = max_failures
        self.max_redirects = max_redirects
        self.failures = 0
        self.redirects = 0
        #: Some failed attempt may have run (a read-only command that was retried).
        self.unknown = False
        #: The ASK redirect whose node did not answer, while the command is held on
        #: that migration (None once another answer came).
        self.held_ask: BaseException | None = None

    def ask_unreached(self, ask: BaseException) -> None:
        """The node ``ask`` (an ASK redirect) named did not answer: the command
        is held on that migration like one whose node is down (paced by the
        hold, bounded by the deadline), so the redirect is not counted."""
        self.redirects -= 1
        self.held_ask = ask

    def remaining(self, now: float) -> float | None:
        """Seconds left, or None without a deadline."""
        return None if self.deadline is None else max(0.0, self.deadline - now)

    def spent(self, now: float) -> str | None:
        """Why the budget is spent, or None while it is not."""
        if self.max_redirects is not None and self.redirects > self.max_redirects:
            return f"{self.redirects} redirects"
        if self.max_failures is not None and self.failures > self.max_failures:
            return f"{self.failures} failed attempts"
        if self.deadline is not None and now >= self.deadline:
            return f"{now - self.started:.1f}s and {self.failures} failed attempts"
        return None


class Budgets:
    """Makes one pool's command budgets (its ``retry_timeout``, ``max_failures``,
    ``max_redirects``), counted from when the command was issued."""

    __slots__ = ("_clock", "_max_failures", "_max_redirects", "_timeout")

    def __init__(
        self, clock: Callable[[], float], timeout: float | None, max_failures: int | None,
        max_redirects: int | None,
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._max_failures = max_failures
        self._max_redirects = max_redirects

    def __call__(self, error: BaseException | None = None) -> Budget:
        """A new budget. After a reply stall (``error`` caused by a
        :class:`~clustermgr.errors.ReplyTimeoutError`) the command had been
        waiting at most as long as its connection was silent: that time is
        spent already, so ``retry_timeout`` bounds its whole life."""
        start = self._clock()
        cause = error.__cause__ if error is not None else None
        if isinstance(cause, ReplyTimeoutError):
            start -= cause.silent_for
        return Budget(start, self._timeout, self._max_failures, self._max_redirects)
