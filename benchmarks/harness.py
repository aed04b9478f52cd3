"""Orchestration: which jobs run where, in which order, against which servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapters import ADAPTERS
from .ceiling import ratios as ceiling_ratios
from .isolated import interpreter_for
from .jobs import Job, Target
from .runner import run_job
from .scenarios import SCENARIOS
from .servers import Servers

__all__ = ["Options", "run"]

ROOT = Path(__file__).resolve().parent.parent
SWEEP_LEVELS = (1, 10, 50, 100, 200, 500, 1000)
MASTERS_LEVELS = (1, 200, 1000)


@dataclass
class Options:
    """Everything the command line decides."""

    clients: list[str]
    scenarios: list[str]
    runs: int = 3
    scale: float = 1.0
    duration: float | None = None
    maxsize: int = 10
    in_process: bool = False
    sweep: bool = False
    sweep_ops: int = 20_000
    cluster: tuple[str, int] | None = None
    single: tuple[str, int] | None = None
    create_venvs: bool = True
    job_timeout: float = 900.0
    retries: int = 1
    ceiling: bool = True
    """Also run ``redis-benchmark`` on the cluster (see :mod:`benchmarks.ceiling`)."""
    client_options: dict[str, Any] = field(default_factory=dict)


def log(message: str) -> None:
    """Progress on stderr (the report goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def dispatch(job: Job, python: str, opts: Options) -> dict[str, Any]:
    """Run ``job``; if it crashed (not: had errors), retry up to ``opts.retries`` times.

    A crash is a failure to run at all (import error while the tree is being
    edited, server gone, ...); the failures are logged and kept in the result.
    """
    job.client_options = dict(opts.client_options)
    result = _dispatch_once(job, python, opts)
    crashes = []
    for _ in range(opts.retries):
        if "failed" not in result:
            break
        crashes.append(result["failed"])
        log(f"{job.client}/{job.scenario} crashed ({result['failed']}); retrying in 5 s")
        time.sleep(5)
        result = _dispatch_once(job, python, opts)
    if crashes:
        result["crashed_before"] = crashes
    return result


def _dispatch_once(job: Job, python: str, opts: Options) -> dict[str, Any]:
    """Run ``job`` in a fresh ``python`` process (or in this one); never raises."""
    if opts.in_process and python == sys.executable:
        try:
            return asyncio.run(run_job(job))
        except Exception as exc:
            return {"failed": f"{type(exc).__name__}: {exc}"}
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(
            [python, "-m", "benchmarks.runner"], input=job.to_json(), capture_output=True,
            text=True, cwd=ROOT, env=env, timeout=opts.job_timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {opts.job_timeout:.0f}s"}
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return {"failed": f"runner exit {done.returncode}: {tail}"}
    if "failed" in result and done.stderr:
        log(f"{job.client}/{job.scenario} failed:\n{done.stderr.strip()[-2000:]}")
    return result


def resolve_clients(opts: Options) -> tuple[dict[str, str], dict[str, str]]:
    """Interpreter per usable client, and the reason each other one is skipped."""
    usable: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for client in opts.clients:
        python, note = interpreter_for(client, create=opts.create_venvs)
        if python is None:
            skipped[client] = note
            log(f"skipping {client}: {note}")
        else:
            usable[client] = python
    return usable, skipped


def _short(result: dict[str, Any]) -> str:
    if "failed" in result:
        return f"FAILED {result['failed']}"
    errors = f" errors={result['errors']}" if result.get("errors") else ""
    return (f"{result['ops_per_sec']:,.0f} ops/s p50={result['p50_ms']:.3f}ms "
            f"p99={result['p99_ms']:.3f}ms sockets={result['sockets']}{errors}")


def run_comparison(
    opts: Options, servers: Servers, pythons: dict[str, str]
) -> list[dict[str, Any]]:
    """Every scenario, client and run; clients rotate order from run to run."""
    records = []
    for run_index in range(opts.runs):
        for name in opts.scenarios:
            scenario = SCENARIOS[name]
            clients = [c for c in pythons if scenario.target in ADAPTERS[c].supports]
            if not clients:
                continue
            shift = run_index % len(clients)
            target = servers.target(scenario.target)
            for client in clients[shift:] + clients[:shift]:
                servers.flush(target)
                job = Job(client, name, target, scenario.sized(opts.scale), opts.maxsize,
                          opts.duration)
                result = dispatch(job, pythons[client], opts)
                log(f"run {run_index + 1}/{opts.runs} {name:<10} {client:<16} {_short(result)}")
                records.append({"run": run_index + 1, "scenario": name, "client": client,
                                **result})
    return records


def _sweep_clients(
    target: Target, pythons: dict[str, str], opts: Options, servers: Servers,
    levels: tuple[int, ...],
) -> dict[str, Any]:
    results = {}
    ops = max(1, round(opts.sweep_ops * opts.scale))
    for client, python in pythons.items():
        servers.flush(target)
        job = Job(client, "sweep-concurrency", target, {"levels": list(levels), "ops": ops},
                  opts.maxsize, opts.duration)
        result = dispatch(job, python, opts)
        for row in result.get("levels", []):
            log(f"sweep {client:<16} tasks={row['tasks']:<5} {_short(row)} "
                f"peak={row['rss_peak_mb']}MB")
        if "failed" in result:
            log(f"sweep {client} FAILED {result['failed']}")
        results[client] = result
    return results


def run_sweep(opts: Options, servers: Servers, pythons: dict[str, str]) -> dict[str, Any]:
    """Concurrency 1..1000, 3 vs 6 masters, memory per connection and per channel."""
    sweep: dict[str, Any] = {}
    cluster = servers.target("cluster")
    sweep["cluster"] = servers.info.get("cluster", "")
    sweep["concurrency"] = _sweep_clients(cluster, pythons, opts, servers, SWEEP_LEVELS)
    if opts.cluster is None:
        sweep["masters"] = {}
        for masters in (3, 6):
            with servers.temporary_cluster(masters, 0) as target:
                sweep["masters"][str(masters)] = _sweep_clients(
                    target, pythons, opts, servers, MASTERS_LEVELS)
    if "clustermgr" in pythons:
        python = pythons["clustermgr"]
        single = servers.target("single")
        quick = opts.scale < 0.5
        memory: dict[str, dict[str, Any]] = {"connections": {}, "channels": {}}
        jobs = (
            ("connections", "mem-connections", "single", single,
             [1, 10, 100] if quick else [1, 10, 100, 500]),
            ("connections", "mem-connections", "cluster", cluster,
             [1, 10] if quick else [1, 10, 50, 100]),
            ("channels", "mem-channels", "single", single,
             [100, 1000] if quick else [100, 1000, 10_000]),
            ("channels", "mem-channels", "cluster", cluster,
             [100, 1000] if quick else [100, 1000, 10_000]),
        )
        for section, scenario, label, target, counts in jobs:
            job = Job("clustermgr", scenario, target, {"counts": counts}, opts.maxsize)
            memory[section][label] = dispatch(job, python, opts)
            log(f"memory {section} {label}: done")
        sweep["memory"] = memory
    return sweep


def run(opts: Options) -> dict[str, Any]:
    """The whole benchmark; returns the JSON-ready payload."""
    from .report import aggregate, check_goals

    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    pythons, skipped = resolve_clients(opts)
    with Servers(opts.cluster, opts.single) as servers:
        records = run_comparison(opts, servers, pythons) if opts.scenarios else []
        sweep = run_sweep(opts, servers, pythons) if opts.sweep else None
        ceiling = _ceiling(opts, servers) if opts.ceiling and opts.scenarios else None
        info = dict(servers.info)
    summary = aggregate(records)
    clients: dict[str, str] = {}
    for row in summary:
        info_text = ", ".join(f"{k}={v}" for k, v in row["client_info"].items() if k != "client")
        clients.setdefault(row["client"], f"{info_text} [{_where(pythons[row['client']])}]")
    return {
        "meta": {
            "timestamp": started,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "servers": info,
            "options": {"runs": opts.runs, "scale": opts.scale, "duration": opts.duration,
                        "maxsize": opts.maxsize, "scenarios": opts.scenarios,
                        "clients": opts.clients, "in_process": opts.in_process,
                        "client_options": opts.client_options},
            "titles": {name: _title(name, opts.scale) for name in opts.scenarios},
            "clients": clients,
            "skipped": skipped,
        },
        "runs": records,
        "summary": summary,
        "goals": check_goals(summary, sweep),
        "sweep": sweep,
        "ceiling": ceiling,
        "ceiling_ratios": ceiling_ratios(summary, ceiling) if ceiling else [],
    }


def _ceiling(opts: Options, servers: Servers) -> dict[str, Any]:
    from .ceiling import measure

    target = servers.target("cluster")
    servers.flush(target)
    requests = max(20_000, round(500_000 * opts.scale))
    result = measure(target.address, requests)
    log(f"ceiling (redis-benchmark, {requests} SETs): "
        + ", ".join(f"{k}={v:,.0f}/s" for k, v in result.items()
                    if k.startswith("c50") and isinstance(v, float)))
    servers.flush(target)
    return result


def _title(name: str, scale: float) -> str:
    scenario = SCENARIOS[name]
    if scale == 1.0:
        return scenario.title
    sizes = ", ".join(f"{k}={v}" for k, v in scenario.sized(scale).items())
    return f"{scenario.title}; scaled x{scale:g}: {sizes}"


def _where(python: str) -> str:
    return "this venv" if python == sys.executable else str(Path(python).parent.parent.name)
