"""``clustermgr dev up|down|status``: local development topologies that outlive the command.

``up`` starts a standalone server, a cluster or a sentinel group with the test
launcher (:mod:`clustermgr.testing`), detached so the processes keep running,
and records their PIDs, ports and directory in a state file
(``$CLUSTERMGR_DEV_DIR``, default ``<tmp>/clustermgr-dev-<uid>/state.json``).
``down`` stops exactly those PIDs; ``status`` prints them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import CliError, say

__all__ = ["KINDS", "add_parser", "run", "state_path"]

KINDS = ("standalone", "cluster", "sentinel")
_STOP_TIMEOUT = 10.0


def add_parser(commands: Any) -> None:
    """Register the subcommand."""
    parser = commands.add_parser(
        "dev", help="start/stop local topologies for development",
        description="Start, stop or list local redis-server topologies (127.0.0.1) that keep "
        "running after the command exits.",
    )
    parser.add_argument("action", choices=("up", "down", "status"))
    kind = parser.add_mutually_exclusive_group()
    for name in KINDS:
        kind.add_argument(f"--{name}", dest="kind", action="store_const", const=name,
                          help=f"a {name} topology" + (" (default for up)" if name ==
                                                       "standalone" else ""))
    parser.add_argument("--state-dir", help="where the state file lives "
                        "(default $CLUSTERMGR_DEV_DIR or <tmp>/clustermgr-dev-<uid>)")
    parser.set_defaults(run=run)


def state_path(state_dir: str | None = None) -> Path:
    """The state file for ``state_dir`` (or the default place)."""
    base = state_dir or os.environ.get("CLUSTERMGR_DEV_DIR")
    if not base:
        base = os.path.join(tempfile.gettempdir(), f"clustermgr-dev-{os.getuid()}")
    return Path(base) / "state.json"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the state file {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def _ours(pid: int) -> bool:
    """True if ``pid`` is alive and still a redis/valkey server (not a reused PID)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if "\nState:\tZ" in status:
        return False
    return b"redis" in cmdline or b"valkey" in cmdline


def _start(kind: str) -> dict[str, Any]:
    from ..testing import LocalCluster, LocalSentinelGroup, LocalStandalone

    topology: Any
    if kind == "cluster":
        topology = LocalCluster()
    elif kind == "sentinel":
        topology = LocalSentinelGroup()
    else:
        topology = LocalStandalone()
    topology.detached = True
    topology.start()
    entry: dict[str, Any] = {
        "pids": topology.pids,
        "ports": [s.port for s in topology.servers],
        "directory": str(topology.directory),
        "started_at": time.time(),
    }
    if kind == "sentinel":
        entry["service"] = topology.service
        entry["urls"] = [f"redis://{h}:{p}" for h, p in topology.sentinel_addresses]
        entry["data_ports"] = [s.port for s in topology.data_nodes]
    elif kind == "cluster":
        entry["urls"] = [f"redis://{h}:{p}" for h, p in topology.startup_nodes]
    else:
        entry["urls"] = [topology.url]
    return entry


def _stop(entry: dict[str, Any]) -> int:
    pids = [int(p) for p in entry.get("pids", []) if _ours(int(p))]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while time.monotonic() < deadline and any(_ours(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _ours(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    directory = entry.get("directory")
    if directory and Path(directory).name.startswith("clustermgr-"):
        shutil.rmtree(directory, ignore_errors=True)
    return len(pids)


def _describe(kind: str, entry: dict[str, Any]) -> str:
    pids = [int(p) for p in entry.get("pids", [])]
    alive = sum(1 for p in pids if _ours(p))
    line = f"{kind}: {alive}/{len(pids)} processes running; " + " ".join(entry.get("urls", []))
    if "service" in entry:
        line += f" (service {entry['service']!r}, data ports {entry.get('data_ports')})"
    return line + f"; pids {pids}; dir {entry.get('directory')}"


def run(args: argparse.Namespace) -> int:
    """Run ``up``, ``down`` or ``status``."""
    path = state_path(args.state_dir)
    state = _load(path)
    if args.action == "up":
        kind = args.kind or "standalone"
        entry = state.get(kind)
        if entry and any(_ours(int(p)) for p in entry.get("pids", [])):
            raise CliError(f"a local {kind} is already up ({' '.join(entry.get('urls', []))}); "
                           f"stop it with `clustermgr dev down --{kind}`")
        say(f"starting a local {kind} ...")
        state[kind] = _start(kind)
        _save(path, state)
        say(_describe(kind, state[kind]))
        say(f"state: {path}")
        return 0
    kinds = [args.kind] if args.kind else [k for k in KINDS if k in state]
    if args.action == "down":
        if not any(k in state for k in kinds):
            say("nothing to stop")
            return 0
        for kind in kinds:
            entry = state.pop(kind, None)
            if entry is not None:
                say(f"{kind}: stopped {_stop(entry)} processes")
        _save(path, state)
        return 0
    shown = [k for k in kinds if k in state]
    if not shown:
        say("no local topologies are up")
    for kind in shown:
        say(_describe(kind, state[kind]))
    return 0
