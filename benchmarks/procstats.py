"""Process statistics read from ``/proc`` (Linux), with portable fallbacks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys

__all__ = ["RssSampler", "open_sockets", "rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process now (peak RSS where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def open_sockets() -> int:
    """Number of socket file descriptors this process holds (-1 if unknown)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return -1
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
    return count


class RssSampler:
    """Samples RSS every ``interval`` seconds in a background task; keeps the peak."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = rss_bytes()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes())
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Reset the peak to the current RSS and start sampling."""
        self.peak = rss_bytes()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> int:
        """Stop sampling; return the peak RSS in bytes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.peak = max(self.peak, rss_bytes())
        return self.peak
