"""Load mode: CPU hogs that end by themselves, die with the test process, stop by
PID, and the ``--load`` option that wraps tests marked ``fault`` in them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from launcher_helpers import PLUGIN_ARGS

from clustermgr.testing import wait_until
from clustermgr.testing.load import CpuHogs


def _hog_alive(pid: int) -> bool:
    """True if ``pid`` runs (not a zombie) and is one of our hogs."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().split(") ", 1)[-1].startswith("Z"):
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"time.monotonic" in fh.read()
    except OSError:
        return False


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().split(") ", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_hogs_burn_cpu_and_end_by_themselves() -> None:
    hogs = CpuHogs(2, seconds=1.5)
    hogs.start()
    try:
        pids = hogs.pids
        assert len(pids) == 2 and all(_hog_alive(pid) for pid in pids)
        wait_until(lambda: all(_cpu_ticks(pid) > 10 for pid in pids), timeout=10, what="CPU use")
        wait_until(lambda: hogs.running() == 0, timeout=15, what="hogs ending by themselves")
    finally:
        hogs.stop()
    assert hogs.pids == []


def test_hogs_stop_kills_them_by_pid() -> None:
    with CpuHogs(2, seconds=120) as hogs:
        pids = hogs.pids
        assert hogs.running() == 2
    assert not any(_hog_alive(pid) for pid in pids)


def test_hogs_die_with_the_process_that_started_them() -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from clustermgr.testing.load import CpuHogs
        hogs = CpuHogs(1, seconds=120)
        hogs.start()
        print(hogs.pids[0], flush=True)
        os._exit(0)  # no stop(): only PR_SET_PDEATHSIG can end the hog now
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    pid = int(out.split()[0])
    wait_until(lambda: not _hog_alive(pid), timeout=10, what="orphaned hog to die")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        CpuHogs(-1)
    with pytest.raises(ValueError):
        CpuHogs(1, seconds=0)


INNER_TESTS = """
import os
import pytest

@pytest.mark.fault
@pytest.mark.timeout(20)
def test_marked(clustermgr_load, request):
    expected = request.config.getoption("--load")
    assert (clustermgr_load is not None) == expected
    if expected:
        assert clustermgr_load.running() == 3
        assert 20 < clustermgr_load.seconds <= 60
        with open(os.environ["PIDS_FILE"], "w") as fh:
            fh.write(" ".join(map(str, clustermgr_load.pids)))

def test_unmarked(clustermgr_load):
    assert clustermgr_load is None
"""


@pytest.mark.parametrize("how", ["option", "env", "off"])
def test_load_option_wraps_only_fault_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner=INNER_TESTS)
    pids_file = pytester.path / "pids"
    monkeypatch.setenv("PIDS_FILE", str(pids_file))
    args = [*PLUGIN_ARGS, "-p", "no:cacheprovider", "--load-hogs", "3"]
    if how == "option":
        args.append("--load")
    monkeypatch.setenv("CLUSTERMGR_LOAD", "1" if how == "env" else "0")
    result = pytester.runpytest_inprocess(*args)
    result.assert_outcomes(passed=2)
    if how == "off":
        assert not pids_file.exists()
        return
    result.stdout.fnmatch_lines(["*clustermgr load mode: CPU hogs (3)*"])
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 3
    deadline = time.monotonic() + 10
    while any(_hog_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_hog_alive(pid) for pid in pids), "hogs outlived their test"
    assert os.getpid() not in pids
