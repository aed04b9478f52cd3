"""Medians over runs, clustermgr/peer ratios, the issue's goals, text tables, JSON."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["GOALS", "aggregate", "check_goals", "render", "write_json"]

OURS = "clustermgr"

GOALS: tuple[tuple[str, str, float], ...] = (
    ("concurrent", "aioredis-cluster", 2.0),
    ("concurrent", "coredis", 3.0),
    ("sequential", "redis-py", 1.5),
    ("batch", "redis-py", 4.0),
    ("single", "redis-py", 1.5),
)
"""(scenario, peer, minimum clustermgr/peer ops/s ratio), from issue 5."""

SWEEP_ERROR_LIMIT = 1000
"""The issue: no errors at any concurrency up to this many tasks."""


def _num(value: float) -> str:
    if value >= 100_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}"


def _median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else 0.0


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (scenario, client): medians over successful runs, errors summed."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["scenario"], record["client"]), []).append(record)
    rows = []
    for (scenario, client), runs in groups.items():
        good = [r for r in runs if "failed" not in r]
        errors: Counter[str] = Counter()
        for r in good:
            errors.update(r.get("error_types", {}))
        rows.append(
            {
                "scenario": scenario,
                "client": client,
                "runs": len(runs),
                "failed_runs": [r["failed"] for r in runs if "failed" in r],
                "ops_per_sec": _median(r["ops_per_sec"] for r in good),
                "ops_per_sec_runs": [round(r["ops_per_sec"]) for r in good],
                "p50_ms": _median(r["p50_ms"] for r in good),
                "p99_ms": _median(r["p99_ms"] for r in good),
                "mean_ms": _median(r.get("mean_ms", 0.0) for r in good),
                "max_ms": max((r.get("max_ms", 0.0) for r in good), default=0.0),
                "latency_of": good[0]["latency_of"] if good else "",
                "errors": sum(errors.values()),
                "error_types": dict(errors),
                "runs_with_errors": sum(1 for r in good if r.get("errors")),
                "sockets": max((r.get("sockets", 0) for r in good), default=0),
                "client_info": good[0].get("client_info", {}) if good else {},
            }
        )
    for row in rows:
        ours = _find(rows, row["scenario"], OURS)
        usable = ours is not None and ours["ops_per_sec"] > 0 and row["ops_per_sec"] > 0
        row["ratio"] = ours["ops_per_sec"] / row["ops_per_sec"] if usable and ours else None
    return rows


def _find(rows: list[dict[str, Any]], scenario: str, client: str) -> dict[str, Any] | None:
    for row in rows:
        if row["scenario"] == scenario and row["client"] == client:
            return row
    return None


def check_goals(
    summary: list[dict[str, Any]], sweep: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The issue's goals that this run can decide, with the measured ratio."""
    results = []
    for scenario, peer, minimum in GOALS:
        peer_row = _find(summary, scenario, peer)
        ours = _find(summary, scenario, OURS)
        if peer_row is None or ours is None:
            continue
        ratio = peer_row["ratio"]
        results.append(
            {
                "goal": f"{scenario}: {OURS} >= {minimum:g}x {peer}",
                "ratio": ratio,
                "met": ratio is not None and ratio >= minimum and ours["errors"] == 0,
                "note": f"{OURS} had {ours['errors']} errors" if ours["errors"] else "",
            }
        )
    levels = (sweep or {}).get("concurrency", {}).get(OURS, {}).get("levels", [])
    if levels:
        errors = sum(r["errors"] for r in levels if r["tasks"] <= SWEEP_ERROR_LIMIT)
        top = max(r["tasks"] for r in levels)
        results.append(
            {
                "goal": f"{OURS}: no errors from 1 to {top} tasks, maxsize=10 per node",
                "ratio": None,
                "met": errors == 0,
                "note": f"{errors} errors" if errors else "",
            }
        )
    return results


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def render_summary(summary: list[dict[str, Any]], titles: dict[str, str]) -> list[str]:
    """The comparison table: one block per scenario."""
    out: list[str] = []
    headers = ["client", "ops/s (median)", "runs", "p50 ms", "p99 ms", "mean ms", "max ms",
               "errors", "sockets", f"{OURS}/peer"]
    for scenario in dict.fromkeys(r["scenario"] for r in summary):
        rows = []
        for r in (r for r in summary if r["scenario"] == scenario):
            errors = str(r["errors"])
            if r["errors"]:
                kinds = ",".join(f"{k}:{v}" for k, v in r["error_types"].items())
                errors = f"{r['errors']} ({kinds}; {r['runs_with_errors']}/{r['runs']} runs)"
            if r["failed_runs"]:
                errors += f" FAILED {len(r['failed_runs'])}/{r['runs']}: {r['failed_runs'][0]}"
            ratio = "" if r["client"] == OURS else (
                f"{r['ratio']:.2f}x" if r["ratio"] is not None else "n/a")
            rows.append([
                r["client"], _num(r["ops_per_sec"]),
                " ".join(_num(v) for v in r["ops_per_sec_runs"]),
                f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['mean_ms']:.3f}",
                f"{r['max_ms']:.1f}", errors, str(r["sockets"]), ratio,
            ])
        latency = next((r["latency_of"] for r in summary if r["scenario"] == scenario), "op")
        out.append(f"== {scenario}: {titles.get(scenario, '')} (latency per {latency})")
        out.extend(_table(headers, rows))
        out.append("")
    return out


def render_goals(goals: list[dict[str, Any]]) -> list[str]:
    """The goals block."""
    rows = [[g["goal"], "" if g["ratio"] is None else f"{g['ratio']:.2f}x",
             "met" if g["met"] else "MISSED", g["note"]] for g in goals]
    return ["== goals (issue 5)", *_table(["goal", "ratio", "", "note"], rows), ""] if rows else []


def render_sweep(sweep: dict[str, Any]) -> list[str]:
    """Concurrency, masters and memory tables."""
    out: list[str] = []
    headers = ["client", "tasks", "ops/s", "p50 ms", "p99 ms", "errors", "sockets",
               "RSS MB", "peak MB"]

    def level_rows(results: dict[str, Any], prefix: list[str]) -> list[list[str]]:
        rows = []
        for client, result in results.items():
            if "failed" in result:
                rows.append([*prefix, client, "-", "FAILED: " + result["failed"], "", "", "", "",
                             "", ""])
                continue
            for r in result["levels"]:
                rows.append([*prefix, client, str(r["tasks"]), _num(r["ops_per_sec"]),
                             f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", str(r["errors"]),
                             str(r["sockets"]), f"{r['rss_mb']:.1f}", f"{r['rss_peak_mb']:.1f}"])
        return rows

    if sweep.get("concurrency"):
        out.append(f"== concurrency sweep on {sweep.get('cluster', 'the cluster')} "
                   "(sockets/RSS: whole client process)")
        out.extend(_table(headers, level_rows(sweep["concurrency"], []), left=1))
        out.append("")
    if sweep.get("masters"):
        out.append("== 3 vs 6 masters (no replicas)")
        rows = []
        for masters, results in sweep["masters"].items():
            rows.extend(level_rows(results, [masters]))
        out.extend(_table(["masters", *headers], rows, left=2))
        out.append("")
    for name, title, unit, count_key in (
        ("connections", "memory per idle connection (clustermgr)", "connection", "sockets"),
        ("channels", "memory per subscribed channel (clustermgr)", "channel", "channels"),
    ):
        blocks = sweep.get("memory", {}).get(name, {})
        if not blocks:
            continue
        out.append(f"== {title}; tracemalloc = Python heap, RSS = process")
        rows = []
        for target, result in blocks.items():
            if "failed" in result:
                rows.append([target, "FAILED: " + result["failed"], "", "", "", "", ""])
                continue
            for r in result["rows"]:
                rows.append([
                    target, str(r[count_key]), str(r["sockets"]),
                    f"{r['traced_bytes'] / 1024:.0f}",
                    str(r.get(f"traced_per_{unit}", "")),
                    str(r.get(f"marginal_traced_per_{unit}", "")),
                    str(r.get(f"rss_per_{unit}", "")),
                ])
        out.extend(_table(
            ["target", f"{unit}s" if unit == "channel" else "connections (sockets)",
             "new sockets", "traced KiB", f"B/{unit}",
             f"marginal B/{unit}", f"RSS B/{unit}"], rows, left=1))
        out.append("")
    return out


def render_ceiling(ceiling: dict[str, Any] | None, ratios: list[dict[str, Any]]) -> list[str]:
    """redis-benchmark's figures and clustermgr's ratios to them."""
    if not ceiling:
        return []
    if "skipped" in ceiling:
        return [f"== ceiling: skipped ({ceiling['skipped']})", ""]
    out = [f"== ceiling: redis-benchmark --cluster SET, {ceiling['requests']:,} requests"]
    rows = [[name, _num(ceiling[name]) if ceiling.get(name) else
             f"FAILED {ceiling.get(name + '_error', '')}"]
            for name in ("c50", "c50_P16")]
    out.extend(_table(["run", "SET/s"], rows))
    out.append("")
    if ratios:
        rows = [[r["label"], f"{r['ratio']:.2f}x",
                 "" if r["goal"] is None else ("met" if r["ratio"] >= r["goal"] else "MISSED")
                 + f" (goal {r['goal']:g}x)"] for r in ratios]
        out.append("== clustermgr vs the ceiling (issue 10 goals)")
        out.extend(_table(["comparison", "ratio", "goal"], rows))
        out.append("")
    return out


def render(payload: dict[str, Any]) -> str:
    """The whole text report."""
    meta = payload["meta"]
    out = [
        f"clustermgr benchmarks {meta['timestamp']}  python {meta['python']}  "
        f"cpus {meta['cpus']}  redis {meta['servers'].get('server_version', '?')}",
        f"cluster: {meta['servers'].get('cluster', '-')}; runs: {meta['options']['runs']} "
        f"(median); scale {meta['options']['scale']}",
    ]
    for client, info in meta["clients"].items():
        out.append(f"  {client}: {info}")
    for client, reason in meta["skipped"].items():
        out.append(f"  {client}: SKIPPED ({reason})")
    out.append("")
    out.extend(render_summary(payload["summary"], meta["titles"]))
    out.extend(render_goals(payload["goals"]))
    out.extend(render_ceiling(payload.get("ceiling"), payload.get("ceiling_ratios", [])))
    if payload.get("sweep"):
        out.extend(render_sweep(payload["sweep"]))
    return "\n".join(out)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (creating parent directories)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
