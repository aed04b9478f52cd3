"""Common lifecycle for multi-process topologies (start/stop/context manager)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from .process import LocalServer

__all__ = ["Topology"]

_T = TypeVar("_T", bound="Topology")


class Topology:
    """Base class: owns a temp dir and every :class:`LocalServer` it started.

    Subclasses implement :meth:`_start`.  :meth:`start` calls :meth:`stop` if
    :meth:`_start` fails, so a partial start never leaks processes, and
    :meth:`stop` is idempotent.
    """

    kind = "topology"
    #: Set before :meth:`start` to leave the processes running after this Python
    #: process exits (no ``PR_SET_PDEATHSIG``, not killed at exit); stop them by
    #: PID later. Used by ``clustermgr dev up``.
    detached = False

    def __init__(self, *, binary: str | None = None, startup_timeout: float = 30.0) -> None:
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.directory: Path | None = None
        self._servers: list[LocalServer] = []
        self._started = False

    # -- subclass API -------------------------------------------------------

    def _start(self) -> None:
        raise NotImplementedError

    def _new_dir(self, name: str) -> Path:
        if self.directory is None:
            raise RuntimeError("topology directory not created")
        path = self.directory / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _track(self, server: LocalServer) -> LocalServer:
        if self.detached:
            server.die_with_parent = False
        self._servers.append(server)
        return server

    @staticmethod
    def _start_all(servers: list[LocalServer], timeout: float) -> None:
        """Launch ``servers`` in parallel, then wait for each to answer PING."""
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready(timeout)

    # -- public -------------------------------------------------------------

    @property
    def servers(self) -> list[LocalServer]:
        """Every process of this topology (data nodes and sentinels), in start order."""
        return list(self._servers)

    @property
    def pids(self) -> list[int]:
        """PIDs of the processes that are currently running."""
        return [s.pid for s in self._servers if s.is_running and s.pid is not None]

    @property
    def is_started(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._started

    def start(self: _T) -> _T:
        """Start every process and wait until the topology is healthy; returns ``self``."""
        if self._started:
            return self
        self.directory = Path(tempfile.mkdtemp(prefix=f"clustermgr-{self.kind}-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        if self.detached:
            for server in self._servers:
                server.detach()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every process this topology started (by PID), reap them, remove the temp dir.

        Idempotent, and safe after a partial start failure.
        """
        servers = list(self._servers)
        for server in servers:
            with contextlib.suppress(Exception):
                server.terminate()
        for server in servers:
            try:
                server.stop(timeout)
            except Exception:
                server.kill()
        self._started = False
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self: _T) -> _T:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _describe(self) -> str:
        return "ports=" + ",".join(str(s.port) for s in self._servers)

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<{type(self).__name__} {self._describe()} {state}>"
