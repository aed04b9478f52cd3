"""Run aioredis 1.3.1's own test suite over aioredis and over clustermgr; compare.

Usage (from the repository root)::

    python tests/aioredis_suite/run.py [--mode aioredis|clustermgr|strict ...] [-- pytest args]

``clustermgr`` runs the suite with aioredis' factories swapped for
clustermgr-backed ones and ``aioredis.errors`` names bound to clustermgr's
classes; ``strict`` leaves aioredis' error classes in place (tests catch
those, so clustermgr's errors must be instances of them). ``cluster`` runs
the pool tests with ``create_pool`` giving a cluster pool over a one-shard
cluster. The exit status is
1 when a test that passes on aioredis fails in a clustermgr mode and is not
listed in ``differences.toml`` (each entry with its reason).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sdist import SHA256, cache_dir, suite_dir  # noqa: E402

REPO = HERE.parents[1]
MODES = {
    "aioredis": {"AIOREDIS_SUITE_BACKEND": "aioredis"},
    "clustermgr": {"AIOREDIS_SUITE_BACKEND": "clustermgr"},
    "strict": {"AIOREDIS_SUITE_BACKEND": "clustermgr", "AIOREDIS_SUITE_STRICT": "1"},
    "cluster": {"AIOREDIS_SUITE_BACKEND": "cluster"},
}
#: The tests each mode runs (the cluster mode: the pool tests, over a one-shard cluster).
_PATHS = {"cluster": ["tests/pool_test.py"]}
#: Redis 7 refuses DEBUG unless enabled; aioredis' tests use DEBUG SLEEP/OBJECT.
_SERVER_WRAPPER = """#!/bin/sh
if [ "$1" = "--version" ]; then exec redis-server "$@"; fi
exec redis-server "$@" --enable-debug-command yes
"""
#: Cluster mode: every server cluster-enabled (run.py's backend gives it all slots).
# The suite picks ports from the whole ephemeral range; the cluster bus would be
# port + 10000 (past 65535 for the highest ones), so it gets a free port of its own.
_CLUSTER_WRAPPER = f"""#!/bin/sh
if [ "$1" = "--version" ]; then exec redis-server "$@"; fi
bus=$({sys.executable} -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); \\
print(s.getsockname()[1])')
exec redis-server "$@" --enable-debug-command yes --cluster-enabled yes \\
    --cluster-port "$bus" --cluster-config-file "aioredis-suite-nodes-$$.conf"
"""
_VERSION_ID = re.compile(r"redis_v[0-9.]+-?")


def normalize(nodeid: str) -> str:
    """A test id without the redis-server version aioredis puts in it."""
    return _VERSION_ID.sub("", nodeid).replace("[]", "")


def _server_wrapper(mode: str) -> Path:
    cluster = mode == "cluster"
    path = cache_dir() / ("redis-server-cluster" if cluster else "redis-server-debug")
    text = _CLUSTER_WRAPPER if cluster else _SERVER_WRAPPER
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
        path.chmod(0o755)
    return path


def run_mode(mode: str, extra: list[str], timeout: float) -> dict[str, str]:
    """Run the suite once in ``mode``; ``{normalized nodeid: outcome}``."""
    tree = suite_dir()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = {
            **os.environ, **MODES[mode],
            "AIOREDIS_SUITE_REPORT": str(report),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)]),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        command = [
            sys.executable, "-m", "pytest", "-c", str(HERE / "pytest.ini"), "--rootdir", str(tree),
            "-p", "adapter", "-p", "no:asyncio", "-p", "no:clustermgr", "-p", "no:cacheprovider",
            "-q", "--tb=short", "--redis-server", str(_server_wrapper(mode)),
            *_PATHS.get(mode, ["tests"]), *extra,
        ]
        started = time.monotonic()
        # A session of its own: whatever the suite leaves running is killed with it.
        proc = subprocess.Popen(command, cwd=tree, env=env, start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"[{mode}] timed out after {timeout:.0f}s", file=sys.stderr)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        print(f"[{mode}] {time.monotonic() - started:.0f}s", file=sys.stderr)
        outcomes = json.loads(report.read_text()) if report.exists() else {}
    return {normalize(k): v for k, v in outcomes.items()}


def baseline_key() -> str:
    """What aioredis' own result depends on: the sdist, the server and Python versions."""
    version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"v=([0-9.]+)", version)
    server = found.group(1) if found else "unknown"
    return f"aioredis-{SHA256[:16]}-redis{server}-py{sys.version_info[0]}.{sys.version_info[1]}"


#: A baseline with fewer outcomes is an interrupted run: never cached.
_COMPLETE_RUN = 700


def baseline(extra: list[str], timeout: float, cache: Path | None) -> dict[str, str]:
    """aioredis' own outcomes: from ``cache`` if a complete run with the same key is there."""
    path = cache / f"{baseline_key()}.json" if cache is not None and not extra else None
    if path is not None and path.exists():
        print(f"[aioredis] baseline from {path}", file=sys.stderr)
        cached: dict[str, str] = json.loads(path.read_text())
        return cached
    outcomes = run_mode("aioredis", extra, timeout)
    if path is not None and len(outcomes) >= _COMPLETE_RUN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(outcomes, indent=0, sort_keys=True))
    return outcomes


def load_differences(
    mode: str | None = None, path: Path = HERE / "differences.toml"
) -> dict[str, str]:
    """``{test id: reason}`` of the documented differences (those for ``mode``, if given)."""
    data = tomllib.loads(path.read_text())
    listed: dict[str, str] = {}
    for entry in data.get("difference", []):
        if mode is not None and mode not in entry.get("modes", (mode,)):
            continue
        for test in entry["tests"]:
            listed[test] = entry["reason"]
    return listed


def compare(
    baseline: dict[str, str], ours: dict[str, str], listed: dict[str, str],
    paths: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    """(tests passing on aioredis, failing here and unlisted; listed tests that pass here).

    ``paths``: the test files this mode ran (default: all).
    """
    regressions = sorted(
        test for test, outcome in baseline.items()
        if outcome == "passed" and ours.get(test) != "passed" and test not in listed
        and (paths is None or test.split("::")[0] in paths)
    )
    stale = sorted(test for test in listed if ours.get(test) == "passed")
    return regressions, stale


def _counts(outcomes: dict[str, str]) -> str:
    passed = sum(v == "passed" for v in outcomes.values())
    failed = sum(v == "failed" for v in outcomes.values())
    return f"{passed} passed, {failed} failed, {len(outcomes) - passed - failed} skipped"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen modes, print counts and unlisted regressions; 1 if any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", action="append", choices=sorted(MODES))
    parser.add_argument("--timeout", type=float, default=900.0, help="per mode, seconds")
    parser.add_argument("--save", type=Path, help="write every mode's outcomes here (JSON)")
    parser.add_argument(
        "--baseline-cache", type=Path,
        help="directory keeping aioredis' own outcomes per sdist/server/Python version",
    )
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    modes = args.mode or ["aioredis", "clustermgr", "strict", "cluster"]
    if "aioredis" not in modes:
        modes.insert(0, "aioredis")
    results = {
        mode: baseline(args.pytest_args, args.timeout, args.baseline_cache) if mode == "aioredis"
        else run_mode(mode, args.pytest_args, args.timeout)
        for mode in modes
    }
    if args.save:
        args.save.write_text(json.dumps(results, indent=1, sort_keys=True))
    failed = False
    if not args.pytest_args and len(results["aioredis"]) < _COMPLETE_RUN:
        print(f"aioredis baseline incomplete ({len(results['aioredis'])} outcomes)")
        failed = True
    for mode, outcomes in results.items():
        print(f"{mode}: {_counts(outcomes)}")
        if mode == "aioredis":
            continue
        regressions, stale = compare(
            results["aioredis"], outcomes, load_differences(mode), _PATHS.get(mode)
        )
        for test in regressions:
            print(f"  UNLISTED FAILURE [{mode}] {test}")
        for test in stale:
            print(f"  listed but passes [{mode}] {test}")
        failed = failed or bool(regressions)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
