"""close() releases every node pool the cluster pool ever opened, retiring ones included."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import ConnectionForcedCloseError
from clustermgr.testing.cluster import LocalCluster

pytestmark = pytest.mark.fault


async def test_close_while_a_node_pool_is_retiring_closes_it(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    """A master demoted by a failover is retired with a reply still due; close() then.

    The demoted node pool's connection with the reply due is fenced (the GET,
    unanswered within the fence's grace, fails as maybe executed); close() must
    still close the retired pool: no socket left open.
    """
    cluster = local_cluster_factory(3, 1)
    pool = await create_cluster_pool(cluster.startup_nodes, minsize=1, maxsize=2)
    try:
        key = "retire:{a}"
        await pool.execute("SET", key, "v")
        old = cluster.node_for_key(key)
        old_pool = pool.node_pools[old.address]
        replica = cluster.replicas_of(old)[0]
        # Clients of the old master stall (the cluster bus does not): a GET on it
        # stays in flight while its replica takes over.
        old.command("CLIENT", "PAUSE", "20000", "ALL")
        pending = asyncio.ensure_future(old_pool.execute("GET", key))
        pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.sleep(0.1)
        assert old_pool.in_flight >= 1
        replica.command("CLUSTER", "FAILOVER", "FORCE")  # the old master is not asked
        for _ in range(200):
            if replica.role() == "master":
                break
            await asyncio.sleep(0.05)
        for _ in range(100):  # the pool follows the map change and retires the old master
            await pool._refresh.refresh("test", 1.0)
            if old.address not in pool.node_pools:
                break
            await asyncio.sleep(0.05)
        assert old.address not in pool.node_pools
        # A demoted master is fenced: its reply still due is awaited for the fence's
        # grace only (not the retirement grace), then fails as maybe executed.
        with pytest.raises(ConnectionForcedCloseError) as caught:
            await asyncio.wait_for(pending, 5)
        assert caught.value.may_have_executed is True
    finally:
        pool.close()
        await asyncio.wait_for(pool.wait_closed(), 5)
    assert old_pool.closed and old_pool.size == 0
    with contextlib.suppress(BaseException):
        await pending
