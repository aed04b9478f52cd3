"""Fixtures for tests/cluster: a bare ``cluster-enabled`` redis-server.

A cluster-enabled node answers ``CLUSTER KEYSLOT`` and ``COMMAND`` /
``COMMAND GETKEYS`` before any slot is assigned, which is all the slot and
command-table tests need; no cluster is formed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hiredis
import pytest

_HOST = "127.0.0.1"
_BATCH = 500  # commands written before their replies are read back


class RawRedis:
    """Blocking RESP access to one local server; a fresh socket per call."""

    def __init__(self, port: int, version: str = "") -> None:
        self.port = port
        self.version = version

    def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Pipeline ``commands``; error replies are returned as ``hiredis.ReplyError``."""
        replies: list[Any] = []
        with socket.create_connection((_HOST, self.port), timeout=30) as sock:
            reader = hiredis.Reader()
            for start in range(0, len(commands), _BATCH):
                batch = commands[start : start + _BATCH]
                sock.sendall(b"".join(hiredis.pack_command(tuple(c)) for c in batch))
                expected = len(replies) + len(batch)
                while len(replies) < expected:
                    reply = reader.gets()
                    if reply is False:
                        data = sock.recv(1 << 16)
                        if not data:
                            raise ConnectionError("server closed the connection")
                        reader.feed(data)
                    else:
                        replies.append(reply)
        return replies

    def execute(self, *args: Any) -> Any:
        """Run one command and return its reply."""
        return self.execute_many([args])[0]


def _free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((_HOST, 0))
            port = int(sock.getsockname()[1])
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind((_HOST, port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


def _start(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], RawRedis]:
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--port", str(port),
        "--bind", _HOST,
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(workdir / "nodes.conf"),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--logfile", str(workdir / "server.log"),
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RawRedis(port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if server.execute("PING") == b"PONG":
                info = server.execute("INFO", "server").decode()
                for line in info.splitlines():
                    if line.startswith("redis_version:"):
                        server.version = line.split(":", 1)[1].strip()
                return proc, server
        except OSError:
            time.sleep(0.05)
    _stop(proc)
    raise RuntimeError(f"redis-server did not start on port {port}, see {workdir}/server.log")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()  # our own child, by its PID
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def raw_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawRedis]:
    """A standalone cluster-enabled redis-server (no slots), for the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    error: Exception | None = None
    for attempt in range(3):  # the free port may be taken between probe and bind
        try:
            proc, server = _start(binary, tmp_path_factory.mktemp(f"raw-redis-{attempt}"))
        except RuntimeError as exc:
            error = exc
            continue
        try:
            yield server
        finally:
            _stop(proc)
        return
    raise RuntimeError("could not start redis-server") from error
