"""Profile clustermgr on one or more scenarios (pyinstrument or cProfile).

``python -m benchmarks.profile --scenario gather,batch`` starts the local
servers (or uses ``--cluster``/``--single``/``--sentinel``), and for each
scenario, on one connected pool: runs it once unprofiled (warm-up), once
unprofiled and timed (the honest ops/s and µs per command), then once under
the profiler. It writes ``benchmarks/results/profile-<scenario>-<time>.txt``
(and ``.html`` with pyinstrument) and prints the top functions:

* pyinstrument (default): by self time and by inclusive time (each function
  counted once per stack), as % of the profiled wall time;
* ``--profiler cprofile``: by own time, with calls and µs **per command**
  (own time and call counts divided by the commands the scenario ran), so
  two scenarios doing the same work (a gather of 1,000 ``execute`` calls vs
  ``execute_batch`` of 1,000) compare line by line.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .adapters import make_adapter
from .jobs import Target
from .scenarios import SCENARIOS
from .servers import Servers, parse_hostport

RESULTS = Path(__file__).resolve().parent / "results"


def _label(frame: Any) -> str:
    return f"{frame.function}  {frame.file_path_short}:{frame.line_no}"


def hot_spots(root: Any, top: int = 20) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(self time, inclusive time) per function, largest first, as fractions of the root."""
    total = root.time or 1.0
    self_time: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)

    def walk(frame: Any, on_stack: frozenset[str]) -> None:
        if frame.is_synthetic:
            return
        label = _label(frame)
        self_time[label] += frame.total_self_time
        if label not in on_stack:
            inclusive[label] += frame.time
            on_stack = on_stack | {label}
        for child in frame.children:
            walk(child, on_stack)

    walk(root, frozenset())

    def ranked(table: dict[str, float]) -> list[tuple[str, float]]:
        return sorted(((k, v / total) for k, v in table.items()), key=lambda kv: -kv[1])[:top]

    return ranked(self_time), ranked(inclusive)


def _short_path(path: str) -> str:
    for marker in ("/clustermgr/", "/asyncio/", "/benchmarks/", "/site-packages/"):
        if marker in path:
            return marker.strip("/") + "/" + path.split(marker, 1)[1]
    return path


def per_command(stats: pstats.Stats, commands: int, top: int) -> tuple[list[str], float, int]:
    """Top functions by own time: lines, total own µs per command, calls per command."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    total_time = 0.0
    total_calls = 0
    for (path, line, name), (_prim, calls, tottime, cumtime, _callers) in raw.items():
        total_time += tottime
        total_calls += calls
        rows.append((tottime, calls, cumtime, f"{name}  {_short_path(path)}:{line}"))
    rows.sort(key=lambda r: -r[0])
    n = max(1, commands)
    lines = [f"  {'own us/cmd':>10}  {'cum us/cmd':>10}  {'calls/cmd':>9}  function"]
    for tottime, calls, cumtime, label in rows[:top]:
        lines.append(f"  {tottime / n * 1e6:10.3f}  {cumtime / n * 1e6:10.3f}  "
                     f"{calls / n:9.2f}  {label}")
    return lines, total_time / n * 1e6, total_calls // n


def commands_sent(params: dict[str, Any], result: dict[str, Any]) -> int:
    """Commands one run of a scenario sends, its untimed warm-up and set-up included."""
    total = int(result["ops"])
    if "warmup_batches" in params:
        total += int(params["warmup_batches"]) * int(params["batch"])
    elif "keys" in params:
        total += 2 * int(params["warmup"])
    else:
        total += int(params.get("keyspace", 0)) + int(params.get("warmup", 0))
    return total


async def _measure(
    target: Target, scenario: str, scale: float, maxsize: int,
    start: Callable[[], object], stop: Callable[[], object],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(unprofiled result, profiled result) of ``scenario`` on one connected pool."""
    spec = SCENARIOS[scenario]
    params = spec.sized(scale)
    adapter = make_adapter("clustermgr", maxsize)
    await adapter.connect(target)
    try:
        await spec.run(adapter, params, None)  # warm-up run, not profiled
        plain = await spec.run(adapter, params, None)
        start()
        try:
            profiled = await spec.run(adapter, params, None)
        finally:
            stop()
    finally:
        await adapter.close()
    profiled["commands_sent"] = commands_sent(params, profiled)
    return plain, profiled


def _headline(scenario: str, plain: dict[str, Any], profiled: dict[str, Any]) -> str:
    return (f"scenario {scenario}: {plain['ops_per_sec']:,.0f} commands/s unprofiled "
            f"({1e6 / plain['ops_per_sec'] if plain['ops_per_sec'] else 0:.2f} us/command, "
            f"p50 {plain['p50_ms']:.3f} ms per {plain['latency_of']}); "
            f"{profiled['ops_per_sec']:,.0f}/s under the profiler; "
            f"errors {plain['errors'] + profiled['errors']}")


def _pyinstrument(
    target: Target, scenario: str, args: argparse.Namespace, base: Path
) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(interval=args.interval, async_mode="disabled")
    plain, profiled = asyncio.run(_measure(target, scenario, args.scale, args.maxsize,
                                           profiler.start, profiler.stop))
    session = profiler.last_session
    base.with_suffix(".html").write_text(profiler.output_html(), encoding="utf-8")
    text = profiler.output_text(unicode=True, show_all=False)
    root = session.root_frame() if session is not None else None
    lines = [_headline(scenario, plain, profiled) + f"; interval {args.interval}s"]
    if root is not None:
        by_self, by_inclusive = hot_spots(root, args.top)
        lines.append(f"\nTop {args.top} by self time (% of {root.time:.2f}s profiled):")
        lines.extend(f"  {share:6.1%}  {label}" for label, share in by_self)
        lines.append(f"\nTop {args.top} by inclusive time:")
        lines.extend(f"  {share:6.1%}  {label}" for label, share in by_inclusive)
    summary = "\n".join(lines)
    base.with_suffix(".txt").write_text(summary + "\n\n" + text, encoding="utf-8")
    return summary


def _cprofile(target: Target, scenario: str, args: argparse.Namespace, base: Path) -> str:
    profiler = cProfile.Profile()
    plain, profiled = asyncio.run(_measure(target, scenario, args.scale, args.maxsize,
                                           profiler.enable, profiler.disable))
    stats = pstats.Stats(profiler)
    commands = int(profiled["commands_sent"])
    table, own_us, calls = per_command(stats, commands, args.top)
    lines = [_headline(scenario, plain, profiled),
             f"under cProfile: {own_us:.2f} us own time per command in {calls} Python "
             f"function calls per command (cProfile's own overhead included)",
             f"\nTop {args.top} by own time, per command ({commands:,} commands, warm-up "
             "included):",
             *table]
    summary = "\n".join(lines)
    base.with_suffix(".txt").write_text(summary + "\n", encoding="utf-8")
    stats.dump_stats(str(base.with_suffix(".pstats")))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, profile each scenario, write the reports, print the hot spots."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", "--scenarios", dest="scenarios", default="concurrent",
                        help=f"comma list from {','.join(SCENARIOS)} (default concurrent)")
    parser.add_argument("--profiler", choices=("pyinstrument", "cprofile"),
                        default="pyinstrument")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--maxsize", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.0005,
                        help="pyinstrument sampling interval (s)")
    parser.add_argument("--cluster", type=parse_hostport, default=None, metavar="HOST:PORT")
    parser.add_argument("--single", type=parse_hostport, default=None, metavar="HOST:PORT")
    parser.add_argument("--sentinel", type=parse_hostport, default=None, metavar="HOST:PORT")
    parser.add_argument("--service", default="mymaster")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if args.profiler == "pyinstrument":
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            print("pyinstrument is not installed: pip install pyinstrument "
                  "(or --profiler cprofile)", file=sys.stderr)
            return 2
    profile: Callable[[Target, str, argparse.Namespace, Path], str] = (
        _pyinstrument if args.profiler == "pyinstrument" else _cprofile)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with Servers(args.cluster, args.single, args.sentinel, args.service) as servers:
        for scenario in scenarios:
            target = servers.target(SCENARIOS[scenario].target)
            servers.flush(target)
            base = RESULTS / f"profile-{scenario}-{args.profiler}-{stamp}"
            print(profile(target, scenario, args, base) + "\n")
            print(f"wrote {base}.*", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
