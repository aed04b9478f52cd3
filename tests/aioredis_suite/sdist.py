"""Fetch aioredis 1.3.1's sdist once, check its pinned sha256, unpack its tests.

The archive is cached under ``$CLUSTERMGR_CACHE`` (default ``.cache/`` at the
repository root); nothing of aioredis is kept in the repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

URL = (
    "https://files.pythonhosted.org/packages/2c/2a/"
    "662e5e79dde5d00964b995d50e38ecdefeeeb09b37edafff193c7e850f46/aioredis-1.3.1.tar.gz"
)
SHA256 = "15f8af30b044c771aee6787e5ec24694c048184c7b9e54c3b60c750a4b93273a"
NAME = "aioredis-1.3.1"
#: Test files left out: they test aioredis.sentinel itself, not the interfaces.
EXCLUDED = ("sentinel_commands_test.py", "sentinel_failover_test.py")

_REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Where the archive and its unpacked tree live."""
    return Path(os.environ.get("CLUSTERMGR_CACHE") or _REPO_ROOT / ".cache") / "aioredis-suite"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(target: Path) -> None:
    partial = target.with_suffix(".part")
    with urllib.request.urlopen(URL, timeout=60) as response, partial.open("wb") as out:
        shutil.copyfileobj(response, out)
    found = _sha256(partial)
    if found != SHA256:
        partial.unlink()
        raise RuntimeError(f"{URL}: sha256 {found}, expected {SHA256}")
    partial.replace(target)


def suite_dir() -> Path:
    """The unpacked sdist (its ``tests/`` minus the sentinel files), fetched if needed."""
    root = cache_dir()
    tree = root / NAME
    if (tree / "tests" / "conftest.py").exists():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{NAME}.tar.gz"
    if not archive.exists() or _sha256(archive) != SHA256:
        _download(archive)
    staging = root / f"{NAME}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(f"{NAME}/tests/")]
        tar.extractall(staging, members=members, filter="data")
    for name in EXCLUDED:
        (staging / NAME / "tests" / name).unlink()
    (staging / NAME).replace(tree)
    shutil.rmtree(staging)
    return tree
