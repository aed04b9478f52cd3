"""Profile one scenario for clustermgr under pyinstrument.

``python -m benchmarks.profile --scenario concurrent`` starts the local
cluster (or uses ``--cluster``), runs the scenario once unprofiled (warm-up)
and once under pyinstrument, and writes ``benchmarks/results/profile-<scenario>-
<time>.html`` and ``.txt``.  It also prints the top functions by self time and
by inclusive time (each function counted once per stack), as % of the
profiled wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
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


async def _run(
    target: Target, scenario: str, scale: float, maxsize: int, profiler: Any
) -> dict[str, Any]:
    spec = SCENARIOS[scenario]
    params = spec.sized(scale)
    adapter = make_adapter("clustermgr", maxsize)
    await adapter.connect(target)
    try:
        await spec.run(adapter, params, None)  # warm-up run, not profiled
        profiler.start()
        try:
            result = await spec.run(adapter, params, None)
        finally:
            profiler.stop()
    finally:
        await adapter.close()
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, profile, write the reports, print the hot spots."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--scenario", default="concurrent", choices=list(SCENARIOS))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--maxsize", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.0005, help="sampling interval (s)")
    parser.add_argument("--cluster", type=parse_hostport, default=None, metavar="HOST:PORT")
    parser.add_argument("--single", type=parse_hostport, default=None, metavar="HOST:PORT")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("pyinstrument is not installed: pip install pyinstrument", file=sys.stderr)
        return 2

    profiler = Profiler(interval=args.interval, async_mode="disabled")
    with Servers(args.cluster, args.single) as servers:
        target = servers.target(SCENARIOS[args.scenario].target)
        servers.flush(target)
        result = asyncio.run(_run(target, args.scenario, args.scale, args.maxsize, profiler))
    session = profiler.last_session
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / f"profile-{args.scenario}-{stamp}"
    base.with_suffix(".html").write_text(profiler.output_html(), encoding="utf-8")
    text = profiler.output_text(unicode=True, show_all=False)
    root = session.root_frame() if session is not None else None
    lines = [
        f"scenario {args.scenario}: {result['ops_per_sec']:,.0f} ops/s under the profiler "
        f"(p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, "
        f"errors {result['errors']}); interval {args.interval}s",
    ]
    if root is not None:
        by_self, by_inclusive = hot_spots(root, args.top)
        lines.append(f"\nTop {args.top} by self time (% of {root.time:.2f}s profiled):")
        lines.extend(f"  {share:6.1%}  {label}" for label, share in by_self)
        lines.append(f"\nTop {args.top} by inclusive time:")
        lines.extend(f"  {share:6.1%}  {label}" for label, share in by_inclusive)
    summary = "\n".join(lines)
    base.with_suffix(".txt").write_text(summary + "\n\n" + text, encoding="utf-8")
    print(summary)
    print(f"\nwrote {base}.html and {base}.txt", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
