"""Shared helpers for the clustermgr.testing tests."""

from __future__ import annotations

import importlib.metadata
import os
import time
from collections.abc import Iterable


def plugin_entry_point_active() -> bool:
    """True if pytest auto-loads ``clustermgr.testing.plugin`` via its entry point."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    eps = importlib.metadata.entry_points(group="pytest11")
    return any(ep.value == "clustermgr.testing.plugin" for ep in eps)


PLUGIN_ARGS: list[str] = [] if plugin_entry_point_active() else ["-p", "clustermgr.testing.plugin"]
"""Arguments that load the plugin in a pytester run when the entry point does not."""


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is a redis/valkey process (guards against PID reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().split(") ", 1)[-1].startswith("Z"):
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return False
    return b"redis" in cmdline or b"valkey" in cmdline


def assert_all_gone(pids: Iterable[int], timeout: float = 5.0) -> None:
    """Assert every PID disappears within ``timeout`` seconds."""
    pending = set(pids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if pid_alive(pid)}
        if pending:
            time.sleep(0.05)
    assert not pending, f"processes still alive: {sorted(pending)}"
