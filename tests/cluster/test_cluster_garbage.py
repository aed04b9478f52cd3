"""Held commands are freed by reference counting, not left to the garbage collector.

During a failover a pool retries hundreds of held commands a second against
their dead node. Whatever a finished command leaves in a reference cycle (its
errors' tracebacks keeping the retry loop's frame, which keeps the errors)
waits for the collector, whose full passes then pause the event loop for
10-30 ms -- a write gap on every other shard. Checked with
``gc.DEBUG_SAVEALL``: what the collector finds is kept in ``gc.garbage``.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator

import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import ClusterRetryError
from clustermgr.routing import Classified
from clustermgr.routing.actions import Budget
from clustermgr.testing.cluster import LocalCluster

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """``gc.garbage`` while the collector runs only when asked, saving what it finds."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _keys_on(cluster: LocalCluster, port: int, count: int) -> list[str]:
    keys = [k for k in (f"gc:{i}" for i in range(count * 10))
            if cluster.node_for_key(k).port == port]
    return keys[:count]


async def test_held_commands_leave_no_cycle_after_success_or_failure(
    local_cluster_factory: Callable[..., LocalCluster], saved_garbage: list[object]
) -> None:
    """Commands held on a dead master, retried there several times, then answered
    once it is back (or failed when their budget ends): none of their state
    (command, budget, retry frames) is left for the collector."""
    cluster = local_cluster_factory(replicas_per_master=0)
    patient = await create_cluster_pool(cluster.startup_nodes, retry_timeout=30)
    hasty = await create_cluster_pool(cluster.startup_nodes, retry_timeout=0.3)
    try:
        victim = cluster.masters[0]
        keys = _keys_on(cluster, victim.port, 4)
        cluster.kill(victim)
        await asyncio.sleep(0.2)  # the pools see their connections closed
        gc.collect()
        del saved_garbage[:]
        held = [asyncio.ensure_future(patient.execute("SET", k, "v")) for k in keys]
        failed = await asyncio.gather(
            *(hasty.execute("SET", k, "v") for k in keys), return_exceptions=True
        )
        assert all(isinstance(e, ClusterRetryError) for e in failed), failed
        del failed
        await asyncio.to_thread(cluster.restart, victim)
        assert await asyncio.wait_for(asyncio.gather(*held), 20) == [b"OK"] * len(keys)
        del held
        gc.collect()
        left = [o for o in saved_garbage if isinstance(o, (Classified, Budget))]
        assert not left, f"{len(left)} commands' state found by the collector"
    finally:
        for pool in (patient, hasty):
            pool.close()
            await pool.wait_closed()
