"""Run a pytest selection N times in load mode and count outcomes per test.

``python -m clustermgr.testing.rounds N [pytest args...]`` (``./dev load N``)
starts one pytest process per round with ``--load`` (tests marked ``fault``
run under CPU hogs) and a JUnit XML report, then prints, per test, how many
rounds passed, failed and were skipped, and the first line of each failure.
Without pytest arguments the selection is ``-m fault tests``.  The exit
status is 1 if any round failed or ran no test.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Tally", "main", "read_report", "run_rounds"]

DEFAULT_ARGS: tuple[str, ...] = ("-m", "fault", "tests")
"""The selection when none is given: every test marked ``fault``."""

_OUTCOMES = ("passed", "failed", "skipped")


@dataclass
class Tally:
    """Per-test outcome counts over the rounds, and failure summaries."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    broken_rounds: list[tuple[int, int]] = field(default_factory=list)

    def add(self, round_no: int, test: str, outcome: str, message: str = "") -> None:
        """Count one outcome (``passed``, ``failed`` or ``skipped``) of ``test``."""
        row = self.counts.setdefault(test, dict.fromkeys(_OUTCOMES, 0))
        row[outcome] += 1
        if outcome == "failed":
            self.failures.append((round_no, test, message))

    @property
    def ok(self) -> bool:
        """True if something ran and nothing failed."""
        return bool(self.counts) and not self.failures and not self.broken_rounds

    def render(self) -> str:
        """The table of counts, then the failures, then rounds that broke."""
        width = max((len(test) for test in self.counts), default=4)
        lines = [f"{'test':<{width}}  passed  failed  skipped"]
        for test in sorted(self.counts):
            row = self.counts[test]
            lines.append(
                f"{test:<{width}}  {row['passed']:>6}  {row['failed']:>6}  {row['skipped']:>7}"
            )
        for round_no, test, message in self.failures:
            lines.append(f"round {round_no}: FAILED {test}: {message}")
        for round_no, code in self.broken_rounds:
            lines.append(f"round {round_no}: pytest exited {code} without a failed test")
        return "\n".join(lines)


def read_report(path: Path, round_no: int, tally: Tally) -> int:
    """Add the outcomes in one JUnit XML report to ``tally``; return the failures."""
    failed = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "?")
        test = f"{classname}::{name}" if classname else name
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            tally.add(round_no, test, "failed", message[0][:300] if message else "")
            failed += 1
        elif case.find("skipped") is not None:
            tally.add(round_no, test, "skipped")
        else:
            tally.add(round_no, test, "passed")
    return failed


def run_rounds(rounds: int, pytest_args: Sequence[str], *, python: str = sys.executable) -> Tally:
    """Run pytest ``rounds`` times with ``--load`` and tally the outcomes."""
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="clustermgr-rounds-") as tmp:
        for round_no in range(1, rounds + 1):
            report = Path(tmp) / f"round-{round_no}.xml"
            started = time.monotonic()
            code = subprocess.run(
                [python, "-m", "pytest", "--load", "-q", "-p", "no:cacheprovider",
                 f"--junitxml={report}", *pytest_args],
                check=False,
            ).returncode
            failed = read_report(report, round_no, tally) if report.exists() else 0
            if code != 0 and failed == 0:
                tally.broken_rounds.append((round_no, code))
            print(
                f"== round {round_no}/{rounds}: exit {code}, {failed} failed, "
                f"{time.monotonic() - started:.0f}s",
                flush=True,
            )
    return tally


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``rounds N [pytest args...]``; prints the tally."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not args[0].isdigit() or int(args[0]) < 1:
        print("usage: python -m clustermgr.testing.rounds N [pytest args...]", file=sys.stderr)
        return 2
    rounds = int(args[0])
    tally = run_rounds(rounds, args[1:] or DEFAULT_ARGS)
    print(f"\nload mode, {rounds} round(s):")
    print(tally.render())
    return 0 if tally.ok else 1


if __name__ == "__main__":
    sys.exit(main())
