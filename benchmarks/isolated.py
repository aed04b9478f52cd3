"""Interpreters for the clients: this one, or a private virtualenv.

aioredis-cluster pins ``hiredis<3`` while redis-py 8 needs hiredis >= 3.2
(below that it silently falls back to its pure-Python parser), so
aioredis-cluster gets ``benchmarks/.venv-aioredis-cluster``, created on
demand with ``python -m venv`` + ``pip install aioredis-cluster``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .adapters import ADAPTERS, available

__all__ = ["PRIVATE_VENVS", "interpreter_for"]

HERE = Path(__file__).resolve().parent
PRIVATE_VENVS: dict[str, tuple[Path, tuple[str, ...]]] = {
    "aioredis-cluster": (HERE / ".venv-aioredis-cluster", ("aioredis-cluster",)),
}


def _check(python: Path, module: str) -> bool:
    probe = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, timeout=60, check=False
    )
    return probe.returncode == 0


def _create(venv: Path, packages: tuple[str, ...]) -> str | None:
    """Create ``venv`` and install ``packages``; returns an error text or None."""
    print(f"[bench] creating {venv} and installing {' '.join(packages)} ...", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *packages],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"`{' '.join(step[-3:])}` failed: {' | '.join(tail)}"
    return None


def interpreter_for(client: str, *, create: bool = True) -> tuple[str | None, str]:
    """The Python to run ``client`` with, or ``None`` and the reason it is skipped."""
    module = ADAPTERS[client].module
    if client not in PRIVATE_VENVS:
        if available(client):
            return sys.executable, "project venv"
        return None, f"{module} is not installed (pip install -e '.[bench]')"
    venv, packages = PRIVATE_VENVS[client]
    python = venv / "bin" / "python"
    if python.exists() and _check(python, module):
        return str(python), str(venv.relative_to(HERE.parent))
    if not create:
        return None, f"no private venv at {venv} (run once with --clients {client})"
    error = _create(venv, packages)
    if error is None and _check(python, module):
        return str(python), str(venv.relative_to(HERE.parent))
    return None, f"could not set up {venv}: {error or 'import failed after install'}"
