"""``clustermgr bench [ARGS...]``: ``python -m benchmarks`` in a source checkout."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._common import CliError

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Register the subcommand."""
    parser = commands.add_parser(
        "bench", help="run the benchmarks (python -m benchmarks) from a source checkout",
        description="Run `python -m benchmarks ARGS` when the benchmarks package is importable "
        "from the current directory (a clustermgr source checkout).",
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmarks")
    parser.set_defaults(run=run)


def _importable() -> bool:
    """True if ``python -m benchmarks`` would run the package in the current directory."""
    package = Path.cwd() / "benchmarks"
    return (package / "__init__.py").is_file() and (package / "__main__.py").is_file()


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks in a child process and return its exit status."""
    if not _importable():
        raise CliError(
            f"no benchmarks package importable from {os.getcwd()}: run `clustermgr bench` from "
            "a clustermgr source checkout (it runs `python -m benchmarks`; see "
            "benchmarks/README.md there)", 2,
        )
    forwarded = [a for a in args.args if a != "--"]
    return subprocess.call([sys.executable, "-m", "benchmarks", *forwarded])
