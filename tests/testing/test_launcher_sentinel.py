"""LocalSentinelGroup: startup, failover, faults, auth, cleanup."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from launcher_helpers import assert_all_gone

from clustermgr.testing import LocalSentinelGroup, RespError, execute, process
from clustermgr.testing.resp import as_list, as_str


def test_shared_group_is_ready(redis_sentinel: LocalSentinelGroup) -> None:
    group = redis_sentinel
    assert group.service == "mymaster"
    assert len(group.sentinels) == 3 and len(group.data_nodes) == 2
    master = group.master
    assert master.role() == "master"
    assert [r.role() for r in group.replicas] == ["slave"]
    assert group.master_address == master.address
    for address in group.sentinel_addresses:
        reply = as_list(execute(address, "SENTINEL", "REPLICAS", "mymaster"))
        assert len(reply) == 1
        assert len(as_list(execute(address, "SENTINEL", "SENTINELS", "mymaster"))) == 2
        assert as_list(execute(address, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")) == [
            "127.0.0.1",
            str(master.port),
        ]
    assert "service='mymaster'" in repr(group)


def test_failover_switches_master(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    group = local_sentinel_factory()
    old = group.master
    old.command("SET", "k", "v")
    new = group.failover(demote_old_master=True)
    assert new is not old and new is group.master
    assert new.role() == "master"
    assert old.role() == "slave"
    assert group.replicas == [old]
    assert new.command("GET", "k") == "v"
    back = group.failover()  # and back again
    assert back is old and group.master is old


def test_killed_master_is_replaced_and_sentinel_restart(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    group = local_sentinel_factory(replicas=1, down_after_ms=500)
    old = group.master
    group.kill(old)
    new = group.wait_for_master(not_port=old.port, timeout=20)
    assert new is not old and new.role() == "master"
    sentinel = group.sentinels[0]
    group.kill(sentinel)
    group.restart(sentinel)  # keeps its rewritten config -> knows the new master
    assert group.master is new
    group.restart(old)
    assert old.is_running


def test_auth_group(local_sentinel_factory: Callable[..., LocalSentinelGroup]) -> None:
    group = local_sentinel_factory(password="data-pw", sentinel_password="sent-pw")
    address = group.sentinel_addresses[0]
    with pytest.raises(RespError, match="NOAUTH"):
        execute(address, "PING")
    assert execute(address, "PING", password="sent-pw") == "PONG"
    with pytest.raises(RespError, match="NOAUTH"):
        execute(group.master.address, "GET", "x")
    new = group.failover()
    assert new.role() == "master"


def test_stop_leaves_no_process() -> None:
    group = LocalSentinelGroup(replicas=2, sentinels=3)
    with group:
        pids = group.pids
        directory = group.directory
        assert len(pids) == 6
        info = as_str(group.master.command("INFO", "replication"))
        assert "connected_slaves:2" in info
    assert_all_gone(pids)
    assert directory is not None and not directory.exists()
    group.stop()
    with pytest.raises(ValueError):
        LocalSentinelGroup(sentinels=2, quorum=3)


def test_sentinel_port_race_falls_back_to_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sentinel that must move to another port still ends up in a healthy group."""
    real = process.find_free_port
    calls: list[int] = []
    squatters: list[socket.socket] = []

    def squatting_find_free_port(*args: Any, **kwargs: Any) -> int:
        port = real(*args, **kwargs)
        calls.append(port)
        if len(calls) == 3:  # master, replica0, sentinel0 -> steal sentinel0's port
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()
            squatters.append(sock)
        return port

    monkeypatch.setattr(process, "find_free_port", squatting_find_free_port)
    try:
        with LocalSentinelGroup() as group:
            assert group.sentinels[0].port != calls[2]
            assert group.master.role() == "master"
    finally:
        for sock in squatters:
            sock.close()
