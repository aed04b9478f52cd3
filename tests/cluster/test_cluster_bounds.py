"""A cluster pool's bounds: retry_timeout ends every command, a paused master is followed.

Real clusters; masters are paused with SIGSTOP by PID (resumed in ``finally``).
``cluster-node-timeout`` is long, so the cluster itself never fails the paused
master over: only the pool's bounds (and, in the last test, an operator's
``CLUSTER FAILOVER TAKEOVER``) can end a wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from clustermgr.cluster import ClusterPool, RefreshOptions, create_cluster_pool
from clustermgr.errors import RedisError
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.process import LocalServer

logger = logging.getLogger("tests.cluster.bounds")

ClusterFactory = Callable[..., LocalCluster]

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]

_NO_AUTO_FAILOVER_MS = 60_000


def _key_on(cluster: LocalCluster, node: LocalServer, prefix: str) -> str:
    keys = (f"{prefix}:{i}" for i in range(10_000))
    return next(k for k in keys if cluster.node_for_key(k) == node)


async def _closing(pool: ClusterPool) -> None:
    pool.close()
    await pool.wait_closed()


@pytest.mark.parametrize("read_timeout", [2.0, None])
async def test_retry_timeout_bounds_a_command_to_a_paused_master(
    local_cluster_factory: ClusterFactory, read_timeout: float | None
) -> None:
    """GET and SET to a paused master end by retry_timeout (from when they were
    issued, first attempt included), each error saying whether it may have run."""
    cluster = local_cluster_factory(node_timeout_ms=_NO_AUTO_FAILOVER_MS)
    retry_timeout = 3.0
    pool = await create_cluster_pool(
        cluster.startup_nodes, retry_timeout=retry_timeout, read_timeout=read_timeout)
    victim = cluster.masters[0]
    key = _key_on(cluster, victim, "paused")
    try:
        assert await pool.execute("SET", key, "before") == b"OK"
        await asyncio.to_thread(victim.pause)
        loop = asyncio.get_running_loop()
        started = loop.time()
        read = asyncio.ensure_future(pool.execute("GET", key))
        write = asyncio.ensure_future(pool.execute("SET", key, "after"))
        done, _ = await asyncio.wait([read, write], timeout=retry_timeout + 0.5)
        ended = loop.time() - started
        assert done == {read, write}, f"still pending after {ended:.1f}s"
        for future in (read, write):
            error = future.exception()
            assert isinstance(error, RedisError), error
            assert error.may_have_executed is True
            assert "may have been applied" in str(error), error
        logger.info("GET/SET to a paused master ended after %.2f s (retry_timeout %.1f s)",
                    ended, retry_timeout)
    finally:
        await asyncio.to_thread(victim.resume)
        await _closing(pool)


async def test_paused_master_is_followed_after_a_takeover_with_default_settings(
    local_cluster_factory: ClusterFactory,
) -> None:
    """Default settings: writes to a paused master's slots fail at the default
    reply bound (the pool notices); once its replica takes over, fresh writes
    succeed within 2 s of the takeover."""
    cluster = local_cluster_factory(node_timeout_ms=_NO_AUTO_FAILOVER_MS)
    pool = await create_cluster_pool(cluster.startup_nodes)
    victim = cluster.masters[0]
    (replica,) = cluster.replicas_of(victim)
    key = _key_on(cluster, victim, "followed")
    loop = asyncio.get_running_loop()
    successes: list[float] = []
    failures: list[tuple[float, BaseException]] = []
    writes: set[asyncio.Future[None]] = set()

    async def write(n: int) -> None:
        try:
            await pool.execute("SET", key, n)
        except RedisError as exc:
            failures.append((loop.time(), exc))
        else:
            successes.append(loop.time())

    async def writer() -> None:
        for n in range(10_000):
            future = asyncio.ensure_future(write(n))
            writes.add(future)
            future.add_done_callback(writes.discard)
            await asyncio.sleep(0.02)

    assert await pool.execute("SET", key, "before") == b"OK"
    running = asyncio.ensure_future(writer())
    try:
        await asyncio.to_thread(victim.pause)
        paused_at = loop.time()
        for _ in range(1000):  # the default reply bound fires: the pool noticed
            if failures or loop.time() - paused_at > 20:
                break
            await asyncio.sleep(0.05)
        assert failures, "no write failed within 20 s of the pause"
        noticed = failures[0][0] - paused_at
        assert "read_timeout" in repr(failures[0][1].__cause__) or "read_timeout" in str(
            failures[0][1]), failures[0][1]
        await asyncio.to_thread(replica.command, "CLUSTER", "FAILOVER", "TAKEOVER")
        for _ in range(500):
            if await asyncio.to_thread(replica.role) == "master":
                break
            await asyncio.sleep(0.01)
        took_over = loop.time()
        for _ in range(1000):
            if any(t > took_over for t in successes) or loop.time() - took_over > 10:
                break
            await asyncio.sleep(0.01)
        after = [t - took_over for t in successes if t > took_over]
        logger.info("paused master noticed after %.2f s; first write after the takeover "
                    "succeeded %.3f s after it", noticed, after[0] if after else -1)
        assert after, "no write succeeded within 10 s of the takeover"
        assert after[0] < 2.0, f"first write after the takeover succeeded after {after[0]:.2f}s"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(victim.resume)
        if writes:
            await asyncio.wait(list(writes), timeout=30)
        await _closing(pool)


async def test_retried_blocking_command_keeps_its_own_timeout(
    local_cluster_factory: ClusterFactory,
) -> None:
    """A BLPOP 3 redirected (MOVED) goes through the retry path: its budget is
    retry_timeout plus its own timeout, so it is not cut at retry_timeout."""
    cluster = local_cluster_factory(masters=2, replicas_per_master=0)
    pool = await create_cluster_pool(
        cluster.startup_nodes, retry_timeout=1.0, refresh=RefreshOptions(period=None))
    try:
        key = "blocking:moved"
        slot = cluster.keyslot(key)
        owner = cluster.node_for_slot(slot)
        target = next(m for m in cluster.masters if m.port != owner.port)
        await asyncio.to_thread(cluster.migrate_slot, slot, target)
        assert pool.slot_owner(slot) == owner.address  # the pool has not seen the move
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await asyncio.wait_for(pool.execute("BLPOP", key, 3), 10) is None
        assert loop.time() - started > 2.9
        assert pool.slot_owner(slot) == target.address
    finally:
        await _closing(pool)
