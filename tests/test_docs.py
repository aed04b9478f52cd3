"""The docs site builds with warnings as errors, and shows the tested example verbatim."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("pymdownx")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "site" / "interfaces" / "index.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    example = (ROOT / "examples" / "readwrite_pool.py").read_text()
    # The custom-manager page includes the file the tests run, not a copy of it.
    missing = [line for line in example.splitlines() if line.strip() and line not in text]
    assert not missing, missing[:3]
