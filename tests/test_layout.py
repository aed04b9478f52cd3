"""The package layout: one backoff."""

from __future__ import annotations

import re
from pathlib import Path

import clustermgr

PACKAGE = Path(clustermgr.__file__).parent


_HAND_WRITTEN_BACKOFF = re.compile(r"\*\* *min\(|\b2 \*\* |random\.uniform\(")


def test_one_backoff() -> None:
    """Exponential waits go through clustermgr.backoff.Backoff, not hand-written formulas."""
    # refresh.py: a jittered period, not a backoff.
    allowed = {PACKAGE / "backoff.py", PACKAGE / "cluster" / "refresh.py"}
    offending = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in allowed and "testing" not in path.relative_to(PACKAGE).parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _HAND_WRITTEN_BACKOFF.search(line)
    ]
    assert offending == []
