"""``python -m clustermgr.testing.rounds``: N pytest rounds in load mode, counts per test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from launcher_helpers import PLUGIN_ARGS

from clustermgr.testing.rounds import Tally, main, read_report

ROOT = Path(__file__).resolve().parents[2]

INNER_TESTS = """
import os
import pytest

@pytest.mark.fault
def test_steady(clustermgr_load):
    assert clustermgr_load is not None and clustermgr_load.running() == 1

@pytest.mark.fault
def test_flaky():
    # fails in the first round only: the counter file survives between rounds
    path = os.environ["ROUNDS_COUNTER"]
    seen = int(open(path).read()) if os.path.exists(path) else 0
    open(path, "w").write(str(seen + 1))
    assert seen > 0, "writes to a demoted master: 3"

@pytest.mark.skip(reason="never")
def test_skipped():
    pass
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, ROUNDS_COUNTER=str(tmp_path / "counter"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "clustermgr.testing.rounds", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_rounds_count_outcomes_per_test_and_fail_on_any_failure(tmp_path: Path) -> None:
    result = _run(tmp_path, "2", *PLUGIN_ARGS, "--load-hogs", "1", "test_inner.py")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    rows = {
        line.split()[0]: line.split()[1:]
        for line in out.splitlines()
        if line.startswith("test_inner::")
    }
    assert rows == {
        "test_inner::test_flaky": ["1", "1", "0"],
        "test_inner::test_skipped": ["0", "0", "2"],
        "test_inner::test_steady": ["2", "0", "0"],
    }
    failure = "round 1: FAILED test_inner::test_flaky: AssertionError: writes to a demoted master"
    assert failure in out


def test_rounds_all_passing_exit_zero(tmp_path: Path) -> None:
    result = _run(tmp_path, "1", *PLUGIN_ARGS, "--load-hogs", "1", "test_inner.py", "-k", "steady")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_inner::test_steady  " in result.stdout


def test_round_that_runs_nothing_is_a_failure(tmp_path: Path) -> None:
    result = _run(tmp_path, "1", *PLUGIN_ARGS, "test_inner.py", "-k", "no_such_test")
    assert result.returncode == 1
    assert "pytest exited 5 without a failed test" in result.stdout


def test_bad_round_count_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zero"]) == 2
    assert main(["0"]) == 2
    assert "usage" in capsys.readouterr().err


def test_errors_count_as_failures(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite><testcase classname="t" name="a">'
        '<error message="fixture broke&#10;more"/></testcase></testsuite></testsuites>'
    )
    tally = Tally()
    assert read_report(report, 4, tally) == 1
    assert tally.failures == [(4, "t::a", "fixture broke")]
    assert not tally.ok
