"""Orchestration: which jobs run where, in which order, against which servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapters import ADAPTERS, adapter_name
from .baseline import Baseline, exported
from .ceiling import ratios as ceiling_ratios
from .isolated import interpreter_for
from .jobs import Job, Target, TargetKind
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
    sentinel: tuple[str, int] | None = None
    service: str = "mymaster"
    baseline: str | None = None
    """A git revision whose ``clustermgr/`` runs as the extra client ``clustermgr@REV``."""
    create_venvs: bool = True
    job_timeout: float = 900.0
    retries: int = 1
    ceiling: bool = True
    """Also run ``redis-benchmark`` on the cluster (see :mod:`benchmarks.ceiling`)."""
    client_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Interpreter:
    """How to run a client: a Python, and paths put before the project on PYTHONPATH."""

    python: str
    prepend: tuple[str, ...] = ()
    where: str = ""
    """For the report: which virtualenv, or which exported tree."""

    @property
    def here(self) -> bool:
        """True if this process can run the client itself (``--in-process``)."""
        return self.python == sys.executable and not self.prepend


def log(message: str) -> None:
    """Progress on stderr (the report goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def dispatch(job: Job, python: Interpreter, opts: Options) -> dict[str, Any]:
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


def _dispatch_once(job: Job, python: Interpreter, opts: Options) -> dict[str, Any]:
    """Run ``job`` in a fresh ``python`` process (or in this one); never raises."""
    # Before/after compares like with like: with a baseline, every client gets
    # a fresh process (the baseline cannot run in this one).
    if opts.in_process and python.here and opts.baseline is None:
        try:
            return asyncio.run(run_job(job))
        except Exception as exc:
            return {"failed": f"{type(exc).__name__}: {exc}"}
    path = os.pathsep.join([*python.prepend, str(ROOT)])
    env = dict(os.environ, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1")
    # ``-m`` puts the working directory first on sys.path: run an exported
    # tree from its own directory, or the project's clustermgr would win.
    cwd = python.prepend[0] if python.prepend else str(ROOT)
    try:
        done = subprocess.run(
            [python.python, "-m", "benchmarks.runner"], input=job.to_json(), capture_output=True,
            text=True, cwd=cwd, env=env, timeout=opts.job_timeout, check=False,
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
    package = result.get("client_info", {}).get("package")
    if python.prepend and package is not None and not package.startswith(python.prepend[0]):
        return {"failed": f"imported clustermgr from {package}, not from {python.prepend[0]}"}
    return result


def resolve_clients(
    opts: Options, baseline: Baseline | None = None
) -> tuple[dict[str, Interpreter], dict[str, str]]:
    """Interpreter per usable client, and the reason each other one is skipped.

    ``clustermgr@REV`` (with ``baseline``) comes right after ``clustermgr``.
    """
    usable: dict[str, Interpreter] = {}
    skipped: dict[str, str] = {}
    for client in opts.clients:
        python, note = interpreter_for(client, create=opts.create_venvs)
        if python is None:
            skipped[client] = note
            log(f"skipping {client}: {note}")
        else:
            where = "this venv" if python == sys.executable else note
            usable[client] = Interpreter(python, where=where)
        if client == "clustermgr" and baseline is not None:
            usable[baseline.client] = Interpreter(
                sys.executable, (str(baseline.path),),
                where=f"{baseline.commit[:12]} exported to {baseline.path}")
    return usable, skipped


def scenario_clients(
    name: str, pythons: dict[str, Interpreter], skipped: dict[str, str]
) -> list[str]:
    """The clients that can run scenario ``name``; records why the others cannot."""
    kind: TargetKind = SCENARIOS[name].target
    clients = []
    for client in pythons:
        adapter = ADAPTERS[adapter_name(client)]
        reason = adapter.unsupported(kind)
        if reason is None:
            clients.append(client)
        elif kind in adapter.supports:  # not by design: say why
            skipped.setdefault(f"{client} on {kind}", reason)
    return clients


def _short(result: dict[str, Any]) -> str:
    if "failed" in result:
        return f"FAILED {result['failed']}"
    errors = f" errors={result['errors']}" if result.get("errors") else ""
    return (f"{result['ops_per_sec']:,.0f} ops/s p50={result['p50_ms']:.3f}ms "
            f"p99={result['p99_ms']:.3f}ms sockets={result['sockets']}{errors}")


def run_comparison(
    opts: Options, servers: Servers, pythons: dict[str, Interpreter], skipped: dict[str, str]
) -> list[dict[str, Any]]:
    """Every scenario, client and run; clients rotate order from run to run."""
    records = []
    for run_index in range(opts.runs):
        for name in opts.scenarios:
            scenario = SCENARIOS[name]
            clients = scenario_clients(name, pythons, skipped)
            if not clients:
                continue
            shift = run_index % len(clients)
            target = servers.target(scenario.target)
            for client in clients[shift:] + clients[:shift]:
                servers.flush(target)
                job = Job(client, name, target, scenario.sized(opts.scale), opts.maxsize,
                          opts.duration)
                result = dispatch(job, pythons[client], opts)
                log(f"run {run_index + 1}/{opts.runs} {name:<19} {client:<19} {_short(result)}")
                records.append({"run": run_index + 1, "scenario": name, "client": client,
                                **result})
    return records


def _sweep_clients(
    target: Target, pythons: dict[str, Interpreter], opts: Options, servers: Servers,
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


def run_sweep(
    opts: Options, servers: Servers, pythons: dict[str, Interpreter]
) -> dict[str, Any]:
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
    load_start = _loadavg()
    with contextlib.ExitStack() as stack:
        baseline = None
        if opts.baseline is not None:
            baseline = stack.enter_context(exported(opts.baseline, ROOT))
            log(f"baseline {baseline.describe()}, exported to {baseline.path}")
        pythons, skipped = resolve_clients(opts, baseline)
        with Servers(opts.cluster, opts.single, opts.sentinel, opts.service) as servers:
            records = run_comparison(opts, servers, pythons, skipped) if opts.scenarios else []
            sweep = run_sweep(opts, servers, pythons) if opts.sweep else None
            ceiling = _ceiling(opts, servers) if opts.ceiling and opts.scenarios else None
            info = dict(servers.info)
    summary = aggregate(records)
    clients: dict[str, str] = {}
    for row in summary:
        info_text = ", ".join(f"{k}={v}" for k, v in row["client_info"].items() if k != "client")
        clients.setdefault(row["client"], f"{info_text} [{pythons[row['client']].where}]")
    return {
        "meta": {
            "timestamp": started,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_average": {"start": load_start, "end": _loadavg()},
            "servers": info,
            "options": {"runs": opts.runs, "scale": opts.scale, "duration": opts.duration,
                        "maxsize": opts.maxsize, "scenarios": opts.scenarios,
                        "clients": opts.clients, "in_process": opts.in_process,
                        "client_options": opts.client_options, "baseline": opts.baseline},
            "baseline": None if baseline is None else {
                "client": baseline.client, "rev": baseline.rev, "commit": baseline.commit,
                "subject": baseline.subject},
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
    """redis-benchmark on each kind of target the scenarios used (cluster, sentinel master)."""
    from .ceiling import measure

    requests = max(20_000, round(500_000 * opts.scale))
    kinds = dict.fromkeys(SCENARIOS[name].target for name in opts.scenarios)
    out: dict[str, Any] = {}
    for kind in ("cluster", "sentinel"):
        if kind not in kinds:
            continue
        target = servers.target(kind)
        servers.flush(target)
        result = measure(servers.master_of(target), requests, cluster=kind == "cluster")
        log(f"ceiling on the {kind} (redis-benchmark, {requests} SETs): "
            + ", ".join(f"{k}={v:,.0f}/s" for k, v in result.items()
                        if k.startswith("c50") and isinstance(v, float)))
        servers.flush(target)
        out[kind] = result
    return out


def _loadavg() -> list[float]:
    """1, 5 and 15 minute load averages (the machine is shared: report them)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _title(name: str, scale: float) -> str:
    scenario = SCENARIOS[name]
    if scale == 1.0:
        return scenario.title
    sizes = ", ".join(f"{k}={v}" for k, v in scenario.sized(scale).items())
    return f"{scenario.title}; scaled x{scale:g}: {sizes}"

