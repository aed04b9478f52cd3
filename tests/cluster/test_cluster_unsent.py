"""A write the pool provably never sent to a killed node is retried on its successor.

The node is SIGKILLed by PID (reaped before the test goes on) while the pool
holds an idle connection to it; the next write for its slots is issued before
the event loop has read the end of that connection. It was never written (the
kernel already held the node's FIN), so it is not an ``OutcomeUnknownError``:
the pool holds it until the replica is promoted and it runs there once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.testing.cluster import LocalCluster

ClusterFactory = Callable[..., LocalCluster]

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]


async def test_writes_after_a_sigkill_on_an_idle_connection_run_once_on_the_promoted_replica(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes, retry_timeout=20)
    try:
        # Two kills: the write issued at once, and after one loop turn (the task
        # then still runs before the loop reads the socket).
        for turns, victim in enumerate(cluster.masters[:2]):
            (replica,) = cluster.replicas_of(victim)
            key = next(
                k for k in (f"unsent:{turns}:{i}" for i in range(1000))
                if cluster.node_for_key(k).port == victim.port
            )
            assert await pool.execute("SET", key, 10) == b"OK"  # an idle connection stays
            cluster.kill(victim)
            for _ in range(turns):
                await asyncio.sleep(0)
            incr = pool.execute("INCR", key)
            set_other = pool.execute("SET", key + ":set", "x")
            assert await asyncio.wait_for(incr, 20) == 11
            assert await asyncio.wait_for(set_other, 20) == b"OK"
            assert replica.role() == "master"
            assert await pool.execute("GET", key) == b"11"  # applied once
    finally:
        pool.close()
        await pool.wait_closed()
