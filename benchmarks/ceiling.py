"""The ceiling: ``redis-benchmark`` (C, no client overhead) on the same cluster, same run.

Two figures, both ``SET`` of a 16-byte value over random keys in every slot:
50 connections one command at a time (``-c 50``) and 50 connections with 16
commands pipelined each (``-c 50 -P 16``). clustermgr's scenarios are reported
as ratios to them (see :func:`ratios`).
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

RATIOS: tuple[tuple[str, str, str, float | None], ...] = (
    ("batch", "c50_P16", "execute_batch vs redis-benchmark -c 50 -P 16", 0.5),
    ("concurrent", "c50", "200 tasks vs redis-benchmark -c 50", 1.0),
)
"""(clustermgr scenario, ceiling, label, goal) compared in the report."""


def _rps(text: str) -> float:
    """Requests per second from ``redis-benchmark --csv`` output."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    for row in rows:
        if row[0].upper().startswith("SET"):
            return float(row[1])
    raise ValueError(f"no SET line in redis-benchmark output: {text[-300:]!r}")


def measure(node: tuple[str, int], requests: int, timeout: float = 300.0) -> dict[str, Any]:
    """Run every :data:`CEILING_RUNS` entry against the cluster ``node``; never raises."""
    binary = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if binary is None:
        return {"skipped": "redis-benchmark is not on PATH"}
    result: dict[str, Any] = {"requests": requests, "binary": binary}
    for name, extra in CEILING_RUNS:
        command = [
            binary, "-h", node[0], "-p", str(node[1]), "--cluster", "-t", "set",
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


def ratios(summary: list[dict[str, Any]], ceiling: dict[str, Any]) -> list[dict[str, Any]]:
    """clustermgr's ops/s over the ceilings, plus gather vs execute_batch."""
    ours = {r["scenario"]: r["ops_per_sec"] for r in summary if r["client"] == "clustermgr"}
    out: list[dict[str, Any]] = []
    for scenario, name, label, goal in RATIOS:
        base = ceiling.get(name)
        value = ours.get(scenario)
        if base and value:
            out.append({"label": label, "ratio": value / base, "goal": goal})
    if ours.get("gather") and ours.get("batch"):
        out.append({"label": "gather of 1,000 execute() vs execute_batch",
                    "ratio": ours["gather"] / ours["batch"], "goal": 0.6})
    return out
