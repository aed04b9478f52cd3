"""CPU hogs for the load mode: busy-loop child processes that compete for every core.

:class:`CpuHogs` starts ``count`` Python processes that spin until their own
deadline (``seconds``), so they end by themselves even if nobody stops them;
on Linux they also die with the test process (``PR_SET_PDEATHSIG``, see
:mod:`.children`).  :meth:`CpuHogs.stop` kills them by PID and reaps them.
The pytest plugin runs tests marked ``fault`` inside one when ``--load`` (or
``CLUSTERMGR_LOAD=1``) is given.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from types import TracebackType

from .children import death_signal_preexec, spawn

__all__ = ["CpuHogs", "default_hog_count"]

# Spins until the deadline given as argv[1] (seconds from start); no imports
# beyond time so that it starts at once.
_HOG_SOURCE = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    for _ in range(100000):\n"
    "        pass\n"
)


def default_hog_count() -> int:
    """One hog per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class CpuHogs:
    """``count`` busy-loop processes, each ending by itself after ``seconds``.

    Use as a context manager (or :meth:`start` / :meth:`stop`).  Only the PIDs
    it started are ever signalled.
    """

    def __init__(self, count: int | None = None, *, seconds: float = 300.0) -> None:
        if count is not None and count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self.count = default_hog_count() if count is None else count
        self.seconds = seconds
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        """PIDs of the hogs started and not yet stopped."""
        return [proc.pid for proc in self._procs]

    def running(self) -> int:
        """How many of the started hogs are still alive."""
        return sum(1 for proc in self._procs if proc.poll() is None)

    def start(self) -> None:
        """Start the hogs (a failed start stops those already started)."""
        if self._procs:
            raise RuntimeError("CpuHogs already started")
        preexec = death_signal_preexec()
        args = [sys.executable, "-S", "-c", _HOG_SOURCE, repr(self.seconds)]

        def popen() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=preexec,
            )

        try:
            for _ in range(self.count):
                self._procs.append(popen() if preexec is None else spawn(popen))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill every hog by PID and reap it."""
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def __enter__(self) -> CpuHogs:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
