"""The ceiling: ``redis-benchmark`` (C, no client overhead) on the same servers, same run.

Two figures, both ``SET`` of a 16-byte value over random keys (in every slot
of the cluster; on the sentinel group's master): 50 connections one command
at a time (``-c 50``) and 50 connections with 16 commands pipelined each
(``-c 50 -P 16``). clustermgr's scenarios (and ``clustermgr@REV``'s) are
reported as ratios to them (see :func:`ratios`).
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from typing import Any

from .jobs import VALUE

__all__ = ["CEILING_RUNS", "measure", "ratios"]

CEILING_RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("c50", ("-c", "50")),
    ("c50_P16", ("-c", "50", "-P", "16")),
)
"""(name, redis-benchmark arguments) of each ceiling measurement."""

RATIOS: tuple[tuple[str, str, str, str, float | None], ...] = (
    ("cluster", "batch", "c50_P16", "execute_batch vs redis-benchmark -c 50 -P 16", 0.5),
    ("cluster", "concurrent", "c50", "200 tasks vs redis-benchmark -c 50", 1.0),
    ("sentinel", "sentinel-batch", "c50_P16", "sentinel batch vs redis-benchmark -c 50 -P 16",
     None),
    ("sentinel", "sentinel-concurrent", "c50", "sentinel 200 tasks vs redis-benchmark -c 50",
     None),
)
"""(target, clustermgr scenario, ceiling, label, goal) compared in the report.

The goals are issue 10's, stated for the cluster; the sentinel rows are for reading.
"""

GATHER_VS_BATCH: tuple[tuple[str, str, str, float | None], ...] = (
    ("gather", "batch", "gather of 1,000 execute() vs execute_batch", 0.6),
    ("sentinel-gather", "sentinel-batch", "sentinel: gather of 1,000 vs batch", None),
)


def _rps(text: str) -> float:
    """Requests per second from ``redis-benchmark --csv`` output."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    for row in rows:
        if row[0].upper().startswith("SET"):
            return float(row[1])
    raise ValueError(f"no SET line in redis-benchmark output: {text[-300:]!r}")


def measure(
    node: tuple[str, int], requests: int, timeout: float = 300.0, *, cluster: bool = True
) -> dict[str, Any]:
    """Run every :data:`CEILING_RUNS` entry against ``node`` (of a cluster); never raises."""
    binary = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if binary is None:
        return {"skipped": "redis-benchmark is not on PATH"}
    result: dict[str, Any] = {"requests": requests, "binary": binary,
                              "node": f"{node[0]}:{node[1]}", "cluster": cluster}
    for name, extra in CEILING_RUNS:
        command = [
            binary, "-h", node[0], "-p", str(node[1]), *(["--cluster"] if cluster else []),
            "-t", "set",
            "-n", str(requests), "-r", "1000000", "-d", str(len(VALUE)), "--csv", *extra,
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  check=False)
            result[name] = _rps(done.stdout)
        except (subprocess.TimeoutExpired, ValueError, OSError) as exc:
            result[name] = None
            result[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
    return result


def ratios(summary: list[dict[str, Any]], ceilings: dict[str, Any]) -> list[dict[str, Any]]:
    """clustermgr's (and ``clustermgr@REV``'s) ops/s over the ceilings; gather vs batch."""
    ops: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    for row in summary:
        if row["client"].partition("@")[0] == "clustermgr" and row["ops_per_sec"]:
            ops.setdefault(row["client"], {})[row["scenario"]] = row["ops_per_sec"]
            cpu.setdefault(row["client"], {})[row["scenario"]] = row.get("cpu_us_per_op", 0.0)
    out: list[dict[str, Any]] = []
    for client, ours in ops.items():
        for kind, scenario, name, label, goal in RATIOS:
            base = (ceilings.get(kind) or {}).get(name)
            value = ours.get(scenario)
            if base and value:
                out.append({"client": client, "label": label, "ratio": value / base,
                            "goal": goal})
        used = cpu.get(client, {})
        for top, bottom, label, goal in GATHER_VS_BATCH:
            if ours.get(top) and ours.get(bottom):
                out.append({"client": client, "label": label,
                            "ratio": ours[top] / ours[bottom], "goal": goal})
            if used.get(top) and used.get(bottom):  # the same, from client CPU per command
                out.append({"client": client, "label": f"{label} (client CPU)",
                            "ratio": used[bottom] / used[top], "goal": None})
    return out
