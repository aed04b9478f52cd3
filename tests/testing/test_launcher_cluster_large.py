"""LocalCluster at size: 15 masters + 15 replicas on one machine, in bounded time."""

from __future__ import annotations

import time

from launcher_helpers import assert_all_gone

from clustermgr.testing import SLOT_COUNT, LocalCluster
from clustermgr.testing.resp import as_str, parse_info

_MASTERS = 15
_STARTUP_BUDGET = 60.0


def test_fifteen_masters_fifteen_replicas_start_ok_and_stop_by_pid() -> None:
    cluster = LocalCluster(masters=_MASTERS, replicas_per_master=1)
    began = time.monotonic()
    try:
        cluster.start()
        elapsed = time.monotonic() - began
        assert elapsed < _STARTUP_BUDGET, f"started in {elapsed:.1f}s"
        pids = cluster.pids
        assert len(pids) == 2 * _MASTERS
        for node in cluster.nodes:
            info = parse_info(as_str(node.command("CLUSTER", "INFO")))
            assert info["cluster_state"] == "ok", node
            assert info["cluster_known_nodes"] == str(2 * _MASTERS), node
            assert info["cluster_slots_assigned"] == str(SLOT_COUNT), node
        slots = cluster.slots()
        assert sum(r.end - r.start + 1 for r in slots) == SLOT_COUNT
        assert len({r.master_port for r in slots}) == _MASTERS
        assert all(len(r.replica_ports) == 1 for r in slots)
    finally:
        cluster.stop()
    assert cluster.pids == []
    assert_all_gone(pids)
