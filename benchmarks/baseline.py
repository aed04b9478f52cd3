"""An older clustermgr tree measured beside the current one (``--baseline REV``).

:func:`exported` writes ``git archive REV clustermgr`` into a temporary
directory and removes it afterwards. The pseudo-client ``clustermgr@REV`` is
the current clustermgr adapter and scenarios run in a subprocess whose
``PYTHONPATH`` puts that directory first, so ``import clustermgr`` loads the
old package while ``benchmarks`` stays the current one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Baseline", "BaselineError", "check_import", "exported"]

PACKAGE = "clustermgr"


class BaselineError(RuntimeError):
    """The revision cannot be resolved, exported or imported."""


@dataclass(frozen=True)
class Baseline:
    """An exported tree: ``path`` holds the revision's ``clustermgr/`` package."""

    rev: str
    """The revision as given on the command line."""
    commit: str
    subject: str
    path: Path

    @property
    def client(self) -> str:
        """The pseudo-client's name in the report: ``clustermgr@REV``."""
        return f"{PACKAGE}@{self.rev}"

    def describe(self) -> str:
        """One line for the report header."""
        return f"{self.client} = {self.commit[:12]} {self.subject!r}"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise BaselineError(f"git {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def _extract(repo: Path, commit: str, into: Path) -> None:
    """``git archive COMMIT clustermgr | tar -x -C into``."""
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit,
                                PACKAGE], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if archive.stdout is None:  # pragma: no cover - PIPE always gives a stream
        raise BaselineError("git archive: no output stream")
    untar = subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout,
                           capture_output=True, timeout=120, check=False)
    archive.stdout.close()
    _, git_err = archive.communicate(timeout=120)
    if archive.returncode != 0 or untar.returncode != 0:
        raise BaselineError(f"git archive {commit} {PACKAGE} | tar -x failed: "
                            f"{(git_err or untar.stderr).decode(errors='replace').strip()}")
    if not (into / PACKAGE / "__init__.py").is_file():
        raise BaselineError(f"{commit} has no {PACKAGE}/__init__.py")


def check_import(python: str, path: Path) -> str:
    """Import the exported package in ``python``; returns its directory or raises."""
    env = dict(os.environ, PYTHONPATH=str(path), PYTHONDONTWRITEBYTECODE="1")
    probe = subprocess.run(
        [python, "-c", f"import {PACKAGE}, os; print(os.path.dirname({PACKAGE}.__file__))"],
        capture_output=True, text=True, env=env, cwd=path, timeout=60, check=False,
    )
    where = probe.stdout.strip()
    if probe.returncode != 0:
        tail = " | ".join(probe.stderr.strip().splitlines()[-2:])
        raise BaselineError(f"the exported {PACKAGE} does not import: {tail}")
    if Path(where).resolve() != (path / PACKAGE).resolve():
        raise BaselineError(f"PYTHONPATH={path} still imports {PACKAGE} from {where}")
    return where


@contextlib.contextmanager
def exported(rev: str, repo: Path, python: str = sys.executable) -> Iterator[Baseline]:
    """Export ``rev``'s ``clustermgr/`` into a temporary directory for the ``with`` block."""
    commit = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")
    subject = _git(repo, "log", "-1", "--format=%s", commit)
    tmp = Path(tempfile.mkdtemp(prefix=f"clustermgr-baseline-{commit[:8]}-"))
    try:
        _extract(repo, commit, tmp)
        check_import(python, tmp)
        yield Baseline(rev, commit, subject, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
