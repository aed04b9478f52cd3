"""The README's main-job command works as written."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("topology", "expected"),
    [
        ("standalone", "same Channel object, resubscribed by the pool"),
        ("cluster", "writes continue on the new master"),
    ],
)
def test_demo_runs(topology: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clustermgr", "demo", "--topology", topology],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout
    assert "Traceback" not in result.stderr


def test_demo_unknown_topology() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clustermgr", "demo", "--topology", "mesh"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "unknown topology 'mesh'" in result.stdout
