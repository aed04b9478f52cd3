"""The command line, end to end: ``python -m clustermgr ...`` against local topologies."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clustermgr.cluster import key_slot
from clustermgr.testing import find_free_port, wait_until


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child process and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "clustermgr", *args], capture_output=True, text=True,
        timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})}, check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clustermgr: error: "), result.stderr
    for word in words:
        assert word in lines[0]


def url(address: tuple[str, int]) -> str:
    return f"redis://{address[0]}:{address[1]}"


def test_topology_table_and_json(redis_cluster: Any) -> None:
    node = redis_cluster.startup_nodes[0]
    table = cli("topology", url(node))
    assert table.returncode == 0, table.stderr
    assert "16384/16384 slots covered, 3 masters" in table.stdout
    assert table.stdout.count(" master ") == 3 and table.stdout.count("replica of") == 3
    data = json.loads(cli("topology", f"{node[0]}:{node[1]}", "--json").stdout)
    masters = [n for n in data["nodes"] if n["role"] == "master"]
    assert len(data["nodes"]) == 6 and len(masters) == 3
    assert sum(b - a + 1 for n in masters for a, b in n["slots"]) == 16384
    assert all(n["health"] == "online" and isinstance(n["keys"], int) for n in data["nodes"])
    assert all(isinstance(n["config_epoch"], int) for n in masters)


def test_keyslot_with_and_without_owner(redis_cluster: Any) -> None:
    offline = cli("keyslot", "foo", "{user1}:a")
    assert offline.stdout.split("\n")[:2] == [f"foo {key_slot('foo')}",
                                               f"{{user1}}:a {key_slot('{user1}:a')}"]
    owned = cli("keyslot", "foo", "--url", url(redis_cluster.startup_nodes[0]))
    owner = redis_cluster.node_for_key("foo")
    assert owned.stdout.strip() == f"foo {key_slot('foo')} 127.0.0.1:{owner.port}"


def test_error_paths_are_one_line(redis_standalone: Any, redis_sentinel: Any) -> None:
    closed = find_free_port()
    assert_one_line_error(cli("topology", f"redis://127.0.0.1:{closed}"), "cannot connect")
    assert_one_line_error(cli("topology", "redis://127.0.0.1:99999"), "bad URL")
    assert_one_line_error(cli("topology", "http://127.0.0.1:1"), "bad URL")
    assert_one_line_error(cli("topology", url(redis_standalone.address)), "not a cluster")
    assert_one_line_error(cli("watch", url(redis_standalone.address), "--duration", "1"),
                          "cluster")
    assert_one_line_error(cli("sentinel", url(redis_standalone.address), "mymaster"),
                          "not a sentinel")
    sentinel = url(redis_sentinel.sentinel_addresses[0])
    assert_one_line_error(cli("sentinel", sentinel, "nosuch"), "nosuch")
    assert_one_line_error(cli("keyslot", "k", "--url", f"127.0.0.1:{closed}"), "cannot connect")


def test_sentinel_shows_master_replicas_and_views(redis_sentinel: Any) -> None:
    sentinel = url(redis_sentinel.sentinel_addresses[0])
    master = f"127.0.0.1:{redis_sentinel.master_address[1]}"
    text = cli("sentinel", sentinel, redis_sentinel.service)
    assert text.returncode == 0, text.stderr
    assert f"master {master}" in text.stdout
    data = json.loads(cli("sentinel", sentinel, redis_sentinel.service, "--json").stdout)
    assert data["master"]["address"] == master and len(data["replicas"]) == 1
    assert [s["master"] for s in data["sentinels"]] == [master] * 3


def _reader(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_watch_prints_a_failover_as_it_happens(local_cluster_factory: Any) -> None:
    cluster = local_cluster_factory()
    replica = cluster.replicas[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "clustermgr", "watch", url(cluster.startup_nodes[0]),
         "--duration", "60", "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        banner = lines.get(timeout=30)
        assert banner.startswith("watching cluster via"), banner
        cluster.failover(replica)
        started = time.monotonic()
        seen: list[str] = []
        while time.monotonic() - started < 30:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
            if any("failover" in line for line in seen):
                break
        failover = [line for line in seen if "failover" in line]
        assert failover, seen
        assert f"-> 127.0.0.1:{replica.port}" in failover[0]
        assert failover[0][:2].isdigit() and failover[0][2] == ":"  # timestamped
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(15) in (0, 130)
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_dev_up_status_down(tmp_path: Path) -> None:
    env = {"CLUSTERMGR_DEV_DIR": str(tmp_path)}
    up = cli("dev", "up", "--standalone", env=env)
    state = json.loads((tmp_path / "state.json").read_text()) if up.returncode == 0 else {}
    pids = state.get("standalone", {}).get("pids", [])
    try:
        assert up.returncode == 0, up.stderr
        assert len(pids) == 1 and _alive(pids[0])  # still running after the command exited
        port = state["standalone"]["ports"][0]
        assert cli("keyslot", "k").returncode == 0
        status = cli("dev", "status", env=env)
        assert "standalone: 1/1 processes running" in status.stdout
        assert f"127.0.0.1:{port}" in status.stdout
        again = cli("dev", "up", "--standalone", env=env)
        assert_one_line_error(again, "already up")
        down = cli("dev", "down", env=env)
        assert down.returncode == 0 and "stopped 1 processes" in down.stdout
        wait_until(lambda: not _alive(pids[0]), timeout=10, what="the server to stop")
        assert "no local topologies are up" in cli("dev", "status", env=env).stdout
        assert not Path(state["standalone"]["directory"]).exists()
    finally:
        for pid in pids:  # only the process this test started through the CLI
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_bench_outside_a_checkout_says_how(tmp_path: Path) -> None:
    result = cli("bench", cwd=tmp_path)
    assert_one_line_error(result, "python -m benchmarks")
    assert result.returncode == 2


def test_demo_is_still_a_subcommand() -> None:
    result = cli("demo", "--help")
    assert result.returncode == 0 and "--topology" in result.stdout
    assert "watch" in cli("--help").stdout


@pytest.mark.parametrize("command", ["topology", "keyslot", "watch", "sentinel", "dev"])
def test_every_command_has_help(command: str) -> None:
    assert cli(command, "--help").returncode == 0
