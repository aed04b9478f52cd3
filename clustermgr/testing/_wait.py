"""Bounded polling helper shared by the topologies."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import TopologyTimeout

__all__ = ["wait_until"]

T = TypeVar("T")

_TRANSIENT = (OSError, ConnectionError, TimeoutError, LookupError, ValueError, TypeError)


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Call ``check`` until it returns something other than ``None``/``False``.

    ``check`` may raise transient errors (connection errors, server error
    replies, malformed replies); they are remembered and retried.  Raises
    :class:`TopologyTimeout` naming ``what`` and the last observation once
    ``timeout`` seconds have passed.  The loop is bounded in time and count.
    """
    from .resp import RespError  # local: keep module graph acyclic

    deadline = time.monotonic() + timeout
    max_rounds = int(timeout / max(interval, 0.001)) + 2
    last: object = None
    for _ in range(max_rounds):
        try:
            result = check()
        except (RespError, *_TRANSIENT) as exc:
            last = exc
        else:
            if result is not None and result is not False:
                return result
            last = "condition not met"
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise TopologyTimeout(f"timed out after {timeout:.1f}s waiting for {what}; last: {last!r}")
