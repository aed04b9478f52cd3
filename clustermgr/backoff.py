"""One backoff for every retry and reconnect loop: exponential, capped, jittered."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]

_MAX_EXPONENT = 32  # 2**32 * any sane base is past every cap; avoids float overflow


@dataclass(frozen=True)
class Backoff:
    """Wait ``min(cap, base * 2**attempt)`` times a random factor in ``[jitter, 1]``.

    ``attempt`` counts from 0. ``jitter=1`` gives no randomness; the default
    0.5 spreads clients that failed together over half the interval.
    """

    base: float = 0.01
    cap: float = 0.5
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"base must be > 0, got {self.base!r}")
        if not self.cap >= self.base:
            raise ValueError(f"cap must be >= base ({self.base!r}), got {self.cap!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter!r}")

    def delay(
        self, attempt: int, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (0, 1, ...)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        ceiling = min(self.cap, self.base * 2 ** min(attempt, _MAX_EXPONENT))
        return float(ceiling * uniform(self.jitter, 1.0))

    async def sleep(self, attempt: int, limit: float | None = None) -> None:
        """Sleep :meth:`delay` seconds, but never past ``limit`` seconds."""
        delay = self.delay(attempt)
        await asyncio.sleep(delay if limit is None else max(0.0, min(delay, limit)))
