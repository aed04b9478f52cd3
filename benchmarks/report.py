"""Medians over runs, clustermgr/peer ratios, the issue's goals, text tables, JSON."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["GOALS", "aggregate", "check_goals", "paired_ratios", "render", "write_json"]

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
                "cpu_us_per_op": _median(r.get("cpu_us_per_op", 0.0) for r in good),
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
        cpu_ok = ours is not None and ours["cpu_us_per_op"] > 0 and row["cpu_us_per_op"] > 0
        row["cpu_ratio"] = row["cpu_us_per_op"] / ours["cpu_us_per_op"] if cpu_ok and ours else None
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
               "CPU us/op", "errors", "sockets", f"{OURS}/peer", "CPU peer/ours"]
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
            cpu_ratio = "" if r["client"] == OURS or r.get("cpu_ratio") is None else (
                f"{r['cpu_ratio']:.2f}x")
            rows.append([
                r["client"], _num(r["ops_per_sec"]),
                " ".join(_num(v) for v in r["ops_per_sec_runs"]),
                f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['mean_ms']:.3f}",
                f"{r['max_ms']:.1f}", f"{r.get('cpu_us_per_op', 0.0):.2f}", errors,
                str(r["sockets"]), ratio, cpu_ratio,
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


def render_overview(summary: list[dict[str, Any]]) -> list[str]:
    """One line per scenario: every client's median ops/s and clustermgr's ratio to it."""
    clients = list(dict.fromkeys(r["client"] for r in summary))
    if OURS not in clients or len(clients) < 2:
        return []
    peers = [c for c in clients if c != OURS]
    headers = ["scenario", OURS]
    for peer in peers:
        headers += [peer, f"/{peer}"]
    rows = []
    for scenario in dict.fromkeys(r["scenario"] for r in summary):
        ours = _find(summary, scenario, OURS)
        cells = [scenario, _cell(ours)]
        for peer in peers:
            row = _find(summary, scenario, peer)
            ratio = row.get("ratio") if row else None
            cells += [_cell(row), "" if ratio is None else f"{ratio:.2f}x"]
        rows.append(cells)
    return ["== overview: median ops/s; /peer = clustermgr's ops/s divided by the peer's",
            *_table(headers, rows), ""]


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if not row["ops_per_sec"]:
        return "FAILED" if row["failed_runs"] else "0"
    return _num(row["ops_per_sec"]) + ("*" if row["errors"] else "")


def paired_ratios(
    records: list[dict[str, Any]], scenario: str, ours: str, peer: str
) -> tuple[list[float], list[float]]:
    """Per run: ours/peer ops/s and peer/ours CPU per op, from the same run's two records.

    The two clients of a run are measured one right after the other, so a
    paired ratio cancels the load drifting between runs on a shared machine.
    """
    by_run: dict[int, dict[str, dict[str, Any]]] = {}
    for r in records:
        if r["scenario"] == scenario and r["client"] in (ours, peer) and "failed" not in r:
            by_run.setdefault(r["run"], {})[r["client"]] = r
    ops, cpu = [], []
    for pair in by_run.values():
        a, b = pair.get(ours), pair.get(peer)
        if a is None or b is None:
            continue
        if a["ops_per_sec"] and b["ops_per_sec"]:
            ops.append(a["ops_per_sec"] / b["ops_per_sec"])
        if a.get("cpu_us_per_op") and b.get("cpu_us_per_op"):
            cpu.append(b["cpu_us_per_op"] / a["cpu_us_per_op"])
    return ops, cpu


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{_median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def render_baseline(
    summary: list[dict[str, Any]], baseline: dict[str, Any] | None,
    records: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Before/after: the current clustermgr against ``clustermgr@REV``, per scenario."""
    if not baseline:
        return []
    old = baseline["client"]
    rows = []
    notes = []
    for scenario in dict.fromkeys(r["scenario"] for r in summary):
        ours, then = _find(summary, scenario, OURS), _find(summary, scenario, old)
        if ours is None or then is None:
            continue
        ratio = then.get("ratio")
        cpu_ratio = then.get("cpu_ratio")
        paired_ops, paired_cpu = paired_ratios(records or [], scenario, OURS, old)
        rows.append([scenario, _cell(ours), _cell(then),
                     "n/a" if ratio is None else f"{ratio:.2f}x", _spread(paired_ops),
                     f"{ours['cpu_us_per_op']:.2f}", f"{then['cpu_us_per_op']:.2f}",
                     "n/a" if cpu_ratio is None else f"{cpu_ratio:.2f}x", _spread(paired_cpu),
                     f"{ours['p50_ms']:.3f}", f"{then['p50_ms']:.3f}",
                     str(ours["errors"]), str(then["errors"])])
        if then["failed_runs"]:
            notes.append(f"  {scenario}: {old} FAILED in {len(then['failed_runs'])}/"
                         f"{then['runs']} runs: {then['failed_runs'][0]} -- an adapter call "
                         "failed on the old tree (its API differs, or it crashed)")
    out = [f"== before/after: {OURS} (this tree) vs {old} = {baseline['commit'][:12]} "
           f"{baseline['subject']!r}"]
    out.extend(_table(["scenario", f"{OURS} ops/s", f"{old} ops/s", "now/then",
                       "paired (min-max)", "CPU us/op now", "CPU us/op then", "CPU then/now",
                       "paired (min-max)", "p50 ms now", "p50 ms then", "errors now",
                       "errors then"], rows))
    out.append("  now/then: ops/s ratio (>1: this tree is faster); CPU then/now: client CPU per "
               "op ratio (>1: this tree uses less CPU; steadier than ops/s on a shared machine)")
    out.append("  paired: the median (and range) of the per-run ratios, each from the two "
               "measurements taken back to back in that run")
    out.extend(notes)
    out.append("")
    return out


def render_ceiling(ceiling: dict[str, Any] | None, ratios: list[dict[str, Any]]) -> list[str]:
    """redis-benchmark's figures per target and clustermgr's ratios to them."""
    if not ceiling:
        return []
    out = []
    rows = []
    requests = 0
    for kind, result in ceiling.items():
        if "skipped" in result:
            out.append(f"== ceiling on the {kind}: skipped ({result['skipped']})")
            continue
        requests = result["requests"]
        rows.append([kind, result.get("node", ""), *(
            _num(result[name]) if result.get(name) else f"FAILED {result.get(name + '_error')}"
            for name in ("c50", "c50_P16"))])
    if rows:
        out.append(f"== ceiling: redis-benchmark SET, {requests:,} requests, same servers")
        out.extend(_table(["target", "node", "-c 50 SET/s", "-c 50 -P 16 SET/s"], rows))
    out.append("")
    if ratios:
        clients = list(dict.fromkeys(r["client"] for r in ratios))
        labels = list(dict.fromkeys(r["label"] for r in ratios))
        table = []
        for label in labels:
            cells = [label]
            goal = None
            for client in clients:
                hit = next((r for r in ratios if r["label"] == label and r["client"] == client),
                           None)
                cells.append("" if hit is None else f"{hit['ratio']:.2f}x")
                if hit is not None and client == OURS:
                    goal = hit["goal"], hit["ratio"]
            if goal is None or goal[0] is None:
                cells.append("")
            else:
                cells.append(("met" if goal[1] >= goal[0] else "MISSED") + f" (goal {goal[0]:g}x)")
            table.append(cells)
        out.append("== clustermgr vs the ceiling (issue 10 goals, judged on this tree)")
        out.extend(_table(["comparison", *clients, "goal"], table))
        out.append("")
    return out


def render(payload: dict[str, Any]) -> str:
    """The whole text report."""
    meta = payload["meta"]
    servers = meta["servers"]
    load = meta.get("load_average") or {}
    out = [
        f"clustermgr benchmarks {meta['timestamp']}  python {meta['python']}  "
        f"cpus {meta['cpus']}  redis {servers.get('server_version', '?')}",
        f"cluster: {servers.get('cluster', '-')}; sentinel: {servers.get('sentinel', '-')}; "
        f"runs: {meta['options']['runs']} (median); scale {meta['options']['scale']}",
    ]
    if load:
        out.append(f"load average (1/5/15 min): start {load.get('start')}, "
                   f"end {load.get('end')}")
    if meta.get("baseline"):
        b = meta["baseline"]
        out.append(f"baseline: {b['client']} = {b['commit'][:12]} {b['subject']!r}")
    for client, info in meta["clients"].items():
        out.append(f"  {client}: {info}")
    for client, reason in meta["skipped"].items():
        out.append(f"  {client}: SKIPPED ({reason})")
    out.append("")
    out.extend(render_summary(payload["summary"], meta["titles"]))
    out.extend(render_overview(payload["summary"]))
    out.extend(render_baseline(payload["summary"], meta.get("baseline"), payload["runs"]))
    out.extend(render_goals(payload["goals"]))
    out.extend(render_ceiling(payload.get("ceiling"), payload.get("ceiling_ratios", [])))
    if payload.get("sweep"):
        out.extend(render_sweep(payload["sweep"]))
    return "\n".join(out)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (creating parent directories)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
