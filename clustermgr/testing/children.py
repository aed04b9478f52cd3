"""Start child processes whose lifetime is tied to the test process.

On Linux a child started through :func:`spawn` gets ``PR_SET_PDEATHSIG=SIGKILL``
(:func:`death_signal_preexec`), and is forked from one long-lived helper
thread, because the signal fires when the *thread* that forked the child
exits: children forked from e.g. ``asyncio.to_thread`` workers would die
with those threads.  Used for the servers (:mod:`.process`) and the CPU hogs
of the load mode (:mod:`.load`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["death_signal_preexec", "spawn"]

_PR_SET_PDEATHSIG = 1

_spawner: ThreadPoolExecutor | None = None
_spawner_pid = 0
_spawner_lock = threading.Lock()


def death_signal_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies
    (``None`` where ``prctl`` is unavailable)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(popen: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Run ``popen`` on the long-lived spawner thread and return its result."""
    global _spawner, _spawner_pid
    with _spawner_lock:
        if _spawner is None or _spawner_pid != os.getpid():
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clustermgr-spawn")
            _spawner_pid = os.getpid()
        spawner = _spawner
    return spawner.submit(popen).result()
