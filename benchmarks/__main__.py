"""``python -m benchmarks`` (``./dev bench``): compare clustermgr with its peers.

Starts a local 6-node cluster (3 masters + 3 replicas), a standalone server
and a sentinel group (1 master + 1 replica + 3 sentinels) with clustermgr's own
launcher (or uses ``--cluster``/``--single``/``--sentinel``), runs every
scenario for every installed client, prints a table and writes JSON.
``--baseline REV`` adds ``clustermgr@REV``: the same adapter on the
``clustermgr/`` package of git revision REV, for before/after in one run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .adapters import ADAPTERS
from .baseline import BaselineError
from .harness import Options, log, run
from .report import render, write_json
from .scenarios import SCENARIOS
from .servers import parse_hostport

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_SCALE = 0.05


def _names(text: str, known: Mapping[str, object], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", default=None,
                        help=f"comma list from {','.join(ADAPTERS)} (default: all; "
                             "--quick: all but aioredis-cluster unless named)")
    parser.add_argument("--scenario", "--scenarios", dest="scenarios",
                        default=",".join(SCENARIOS),
                        help=f"comma list from {','.join(SCENARIOS)}, or 'none' "
                             "(default: all)")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per scenario and client; the table shows the median "
                             "(default 3, --quick 1)")
    parser.add_argument("--scale", type=float, default=None,
                        help="multiply every op count by this (default 1; --quick 0.05)")
    parser.add_argument("--duration", type=float, default=None,
                        help="cap each timed phase at this many seconds")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke: --scale 0.05 --runs 1, in-process, small sweep")
    parser.add_argument("--maxsize", type=int, default=10,
                        help="connections per node for clients that wait for a free one "
                             "(default 10)")
    parser.add_argument("--concurrency-sweep", action="store_true",
                        help="also: 1..1000 tasks, 3 vs 6 masters, memory per idle "
                             "connection and per subscribed channel")
    parser.add_argument("--sweep-ops", type=int, default=20_000,
                        help="ops per concurrency level in the sweep (default 20000)")
    parser.add_argument("--cluster", type=parse_hostport, default=None, metavar="HOST:PORT",
                        help="use this existing cluster instead of starting one "
                             "(it is FLUSHALLed!)")
    parser.add_argument("--single", type=parse_hostport, default=None, metavar="HOST:PORT",
                        help="use this existing standalone server (it is FLUSHALLed!)")
    parser.add_argument("--sentinel", type=parse_hostport, default=None, metavar="HOST:PORT",
                        help="use the group this existing sentinel monitors instead of "
                             "starting one (its master is FLUSHALLed!)")
    parser.add_argument("--service", default="mymaster",
                        help="the sentinel service name (default mymaster)")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also run clustermgr@REV: this git revision's clustermgr/ "
                             "package (exported to a temporary directory) under the "
                             "current benchmarks, interleaved with the other clients")
    parser.add_argument("--in-process", action="store_true",
                        help="run project-venv clients in this process (default: a fresh "
                             "process per measurement)")
    parser.add_argument("--redis-py-pool", choices=("blocking", "default"), default="blocking",
                        help="single node: redis-py BlockingConnectionPool(maxsize) (default), "
                             "or its default pool, which raises MaxConnectionsError past 100")
    parser.add_argument("--retries", type=int, default=1,
                        help="re-run a measurement that crashed (not one with errors) this "
                             "many times (default 1)")
    parser.add_argument("--no-create-venv", action="store_true",
                        help="skip aioredis-cluster instead of creating its virtualenv")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the redis-benchmark ceiling on the cluster")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="where to write the JSON (default benchmarks/results/<time>.json)")
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    """Turn parsed arguments into :class:`Options`, applying ``--quick``."""
    explicit = args.clients is not None
    clients = _names(args.clients, ADAPTERS, "client") if explicit else list(ADAPTERS)
    if args.quick and not explicit:
        clients = [c for c in clients if not ADAPTERS[c].isolated]
    scenarios = [] if args.scenarios == "none" else _names(args.scenarios, SCENARIOS, "scenario")
    return Options(
        clients=clients,
        scenarios=scenarios,
        runs=args.runs or (1 if args.quick else 3),
        scale=args.scale or (QUICK_SCALE if args.quick else 1.0),
        duration=args.duration,
        maxsize=args.maxsize,
        in_process=args.in_process or args.quick,
        sweep=args.concurrency_sweep,
        sweep_ops=args.sweep_ops,
        cluster=args.cluster,
        single=args.single,
        sentinel=args.sentinel,
        service=args.service,
        baseline=args.baseline,
        create_venvs=not args.no_create_venv,
        retries=args.retries,
        ceiling=not args.no_ceiling,
        client_options={"redis_py_pool": args.redis_py_pool},
    )


def main(argv: list[str] | None = None) -> int:
    """Run, print the report, write the JSON; exit 1 if a measurement failed."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the local servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        opts = options_from(args)
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        payload = run(opts)
    except BaselineError as exc:
        print(f"error: --baseline {args.baseline}: {exc}", file=sys.stderr)
        return 2
    print(render(payload))
    path: Path = args.json or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, payload)
    log(f"JSON written to {path}")
    failed = any("failed" in r for r in payload["runs"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
