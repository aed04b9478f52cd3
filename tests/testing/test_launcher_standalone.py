"""LocalServer / LocalStandalone lifecycle: start, stop, kill, restart, pause."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from launcher_helpers import assert_all_gone, pid_alive

import clustermgr.testing
from clustermgr.testing import (
    LocalServer,
    LocalStandalone,
    RespError,
    ServerStartError,
    execute,
)


def test_standalone_lifecycle() -> None:
    topo = LocalStandalone()
    with topo:
        server = topo.server
        assert server.is_running and server.ping()
        assert topo.address == ("127.0.0.1", topo.port)
        assert repr(topo).startswith("<LocalStandalone ports=")
        first_pid = server.pid
        assert first_pid is not None and pid_alive(first_pid)
        execute(topo.address, "SET", "k", "v")

        topo.kill()
        assert not server.is_running
        assert_all_gone([first_pid])
        assert not server.ping(0.2)

        topo.restart()
        assert server.is_running and server.pid != first_pid
        assert server.port == topo.port
        assert execute(topo.address, "GET", "k") is None  # no persistence
        pids = topo.pids
        directory = topo.directory
        assert directory is not None and directory.exists()
    assert_all_gone(pids)
    assert not directory.exists()
    topo.stop()  # idempotent
    assert "stopped" in repr(topo)


def test_pause_and_resume() -> None:
    with LocalServer() as server:
        server.pause()
        assert server.is_paused and server.is_running
        with pytest.raises(OSError):
            server.command("PING", timeout=0.3)
        server.resume()
        assert server.ping()
        server.pause()
        pid = server.pid
        server.stop(timeout=3)  # stopping a paused server works
        assert pid is not None
        assert_all_gone([pid])


def test_restart_keeps_port_and_dir() -> None:
    with LocalServer() as server:
        port, directory, pid = server.port, server.directory, server.pid
        server.restart()
        assert (server.port, server.directory) == (port, directory)
        assert server.pid != pid and server.ping()
    assert not directory.exists()


def test_password_and_acl_user(local_standalone_factory: Callable[..., LocalStandalone]) -> None:
    protected = local_standalone_factory(password="p@ss word")
    with pytest.raises(RespError, match="NOAUTH"):
        execute(protected.address, "GET", "x")
    assert execute(protected.address, "PING", password="p@ss word") == "PONG"
    assert protected.url.endswith(f"@127.0.0.1:{protected.port}")

    acl = local_standalone_factory(username="app", password="secret")
    assert acl.server.command("ACL", "WHOAMI") == "app"
    with pytest.raises(RespError):
        execute(acl.address, "AUTH", "secret")  # default user is off
    assert execute(acl.address, "ACL", "WHOAMI", username="app", password="secret") == "app"
    with pytest.raises(ValueError):
        LocalStandalone(username="app")


def test_start_failure_reports_log_tail_and_cleans_up() -> None:
    topo = LocalStandalone(config=["this-is-not-a-directive yes"])
    with pytest.raises(ServerStartError) as info:
        topo.start()
    assert "this-is-not-a-directive" in str(info.value)
    assert topo.pids == []
    assert topo.directory is None
    topo.stop()


def test_bind_race_retries_on_another_port() -> None:
    server = LocalServer()
    taken = server.port
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            server.start()
            assert server.port != taken
            assert server.ping()
        finally:
            server.cleanup()


def test_pinned_port_in_use_fails_clearly() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = LocalServer(port=port)
        try:
            with pytest.raises(ServerStartError, match="Address already in use"):
                server.launch()
                server.wait_ready(timeout=5, bind_retries=1)
        finally:
            server.cleanup()
        assert not server.is_running


def test_server_dies_with_parent_process(tmp_path: Path) -> None:
    root = Path(clustermgr.testing.__file__).resolve().parents[2]
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from clustermgr.testing import LocalServer\n"
        f"server = LocalServer(directory={str(tmp_path / 'srv')!r}).start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        pid = int(line)
        assert pid_alive(pid)
        proc.kill()
        proc.wait(10)
        assert_all_gone([pid])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_server_started_from_a_short_lived_thread_survives_it() -> None:
    server = LocalServer()
    errors: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(30)
    try:
        assert not errors and not thread.is_alive()
        time.sleep(0.2)  # PDEATHSIG would have fired when the thread exited
        assert server.is_running and server.ping()
        restarter = threading.Thread(target=server.restart)
        restarter.start()
        restarter.join(30)
        time.sleep(0.2)
        assert server.is_running and server.ping()
    finally:
        server.cleanup()
