"""The ``clustermgr`` command line (also ``python -m clustermgr``).

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``. Errors a user can cause (unreachable node, not a
cluster, bad URL, unknown service) are printed as one line on stderr with a
non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from . import bench, keyslot, sentinel, topology, watch
from . import dev as dev
from ._common import CliError, run_command

__all__ = ["CliError", "build_parser", "main"]

_COMMANDS: tuple[ModuleType, ...] = (topology, keyslot, watch, sentinel, dev, bench)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="clustermgr",
        description="Look at and run Redis topologies: cluster, sentinel, standalone.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="start a local topology and show clustermgr at work")
    demo.add_argument("--topology", default="standalone", help="standalone (default) or cluster")
    demo.set_defaults(run=_run_demo)
    for module in _COMMANDS:
        module.add_parser(commands)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(args.topology)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the chosen command."""
    args = build_parser().parse_args(argv)
    return run_command(args.run, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
