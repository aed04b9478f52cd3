"""One connect backoff per server, shared by every command that would connect.

After opening a connection failed, :class:`ConnectGate` keeps a window
(``Backoff``: growing with each failure in a row, capped, jittered) during
which new attempts fail fast with a :class:`~clustermgr.errors.ConnectError`
naming the last failure: nothing was sent, so it cannot have executed. The
first attempt after the window goes out; a success closes the window for
good. Without a failure the gate is open, so a pool that never failed never
waits for it.
"""

from __future__ import annotations

from collections.abc import Callable

from .backoff import Backoff
from .errors import ConnectError

__all__ = ["CONNECT_BACKOFF", "ConnectGate"]

#: The default window: 50 ms after one failure, doubling to 1 s.
CONNECT_BACKOFF = Backoff(base=0.05, cap=1.0, jitter=0.5)


class ConnectGate:
    """Whether a connect may be attempted now (see module doc); ``clock`` gives seconds."""

    def __init__(self, backoff: Backoff, clock: Callable[[], float]) -> None:
        self._backoff = backoff
        self._clock = clock
        self._failures = 0
        self._until = 0.0
        self._last = ""

    def check(self) -> None:
        """Raise ConnectError while the window after a failure is open."""
        if self._failures:
            left = self._until - self._clock()
            if left > 0:
                raise ConnectError(
                    f"{self._last} (connect backoff: next attempt in {left:.3f}s)"
                )

    def failed(self, error: ConnectError) -> None:
        """A connect failed: open (or lengthen) the window."""
        self._until = self._clock() + self._backoff.delay(self._failures)
        self._failures += 1
        self._last = str(error)

    def succeeded(self) -> None:
        """A connect succeeded: no window until the next failure."""
        self._failures = 0
