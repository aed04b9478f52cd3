"""Held commands follow the cluster the moment it changes (issue 14, section 1).

A command waiting for a route (owner unreachable, CLUSTERDOWN) is woken by the
slot map change or the cluster state turning ok, not by its own backoff timer.
Each test measures from the event itself (a promotion, ``cluster_state:ok``)
with a bound generous for a loaded machine, well under the backoff cap the
commands slept before (0.5 s, plus a 0.2 s reload rate limit).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from clustermgr.cluster import ClusterPool, create_cluster_pool
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.process import LocalServer

ClusterFactory = Callable[..., LocalCluster]

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]

WAKE_BOUND = 0.2
"""Seconds from the event until every held command has its reply."""

HELD = 12
"""Commands held at once (one alone may be lucky with its backoff timer)."""


def _keys_on(cluster: LocalCluster, node: LocalServer, count: int, prefix: str) -> list[str]:
    keys = [f"{prefix}:{i}" for i in range(count * 10)]
    mine = [k for k in keys if cluster.node_for_key(k).port == node.port]
    assert len(mine) >= count
    return mine[:count]


def _wait_thread(check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check`` every 2 ms; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise AssertionError("timed out")


async def _held(pool: ClusterPool, keys: list[str]) -> list[asyncio.Future[float]]:
    """SET each key, one every 30 ms; each future gives the loop time of its reply."""
    loop = asyncio.get_running_loop()
    done: list[asyncio.Future[float]] = []

    async def one(key: str) -> float:
        await pool.execute("SET", key, "v")
        return loop.time()

    for key in keys:
        future = asyncio.ensure_future(one(key))
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        done.append(future)
        await asyncio.sleep(0.03)
    return done


async def test_held_commands_wake_on_the_promotion(local_cluster_factory: ClusterFactory) -> None:
    """SIGKILL a master, hold commands for its slots, then promote its replica by
    TAKEOVER: every held command is answered within the bound of the promotion."""
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes, retry_timeout=20)
    try:
        victim = cluster.masters[0]
        (replica,) = cluster.replicas_of(victim)
        keys = _keys_on(cluster, victim, HELD, "held")
        await pool.execute("SET", keys[0], "before")
        cluster.kill(victim)
        await asyncio.sleep(0.2)  # the pool sees its connections closed (no write is in doubt)
        held = await _held(pool, keys)
        await asyncio.sleep(1.0)  # long enough for the backoff to reach its cap
        assert not any(f.done() for f in held), "a command ran with its shard's master dead"
        replica.command("CLUSTER", "FAILOVER", "TAKEOVER")
        promoted = await asyncio.to_thread(
            _wait_thread, lambda: replica.role() == "master", 10
        )
        replies = await asyncio.wait_for(asyncio.gather(*held), 10)
        late = max(replies) - promoted
        assert late < WAKE_BOUND, f"last held command answered {late * 1000:.0f} ms after promotion"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_clusterdown_retries_wake_on_cluster_state_ok(
    local_cluster_factory: ClusterFactory,
) -> None:
    """No replicas, full coverage required: a paused master makes the cluster refuse
    every write (CLUSTERDOWN); once it is back and ``cluster_state`` is ok again,
    every held write is answered within the bound (the slot map never changed)."""
    cluster = local_cluster_factory(replicas_per_master=0, node_timeout_ms=500)
    pool = await create_cluster_pool(cluster.startup_nodes, retry_timeout=30)
    try:
        paused, other = cluster.masters[0], cluster.masters[1]
        keys = _keys_on(cluster, other, HELD, "down")
        before = pool.slot_map
        info = other.connect()
        try:
            cluster.pause(paused)
            try:
                await asyncio.to_thread(
                    _wait_thread,
                    lambda: b"cluster_state:fail" in _bytes(info.command("CLUSTER", "INFO")), 10,
                )
                held = await _held(pool, keys)
                await asyncio.sleep(1.0)
                assert not any(f.done() for f in held)
            finally:
                cluster.resume(paused)
            ok = await asyncio.to_thread(
                _wait_thread,
                lambda: b"cluster_state:ok" in _bytes(info.command("CLUSTER", "INFO")), 20,
            )
        finally:
            info.close()
        replies = await asyncio.wait_for(asyncio.gather(*held), 10)
        late = max(replies) - ok
        assert late < WAKE_BOUND, f"last held write answered {late * 1000:.0f} ms after ok"
        assert pool.slot_map is not None and before is not None
        assert pool.slot_map.ranges() == before.ranges()
    finally:
        pool.close()
        await pool.wait_closed()


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()



async def test_held_exclusive_acquires_wake_on_the_promotion(
    local_cluster_factory: ClusterFactory,
) -> None:
    """``acquire`` (MULTI/EXEC, blocking commands) waiting for a dead master's slot
    gets its connection within the bound of the replica's promotion."""
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes, retry_timeout=20)
    loop = asyncio.get_running_loop()
    try:
        victim = cluster.masters[0]
        (replica,) = cluster.replicas_of(victim)
        keys = _keys_on(cluster, victim, 6, "acq")
        cluster.kill(victim)
        await asyncio.sleep(0.2)

        async def take(key: str) -> float:
            conn = await pool.acquire(b"GET", [key])
            pool.release(conn)
            return loop.time()

        held = []
        for key in keys:
            held.append(asyncio.ensure_future(take(key)))
            await asyncio.sleep(0.03)
        await asyncio.sleep(1.0)
        assert not any(f.done() for f in held)
        replica.command("CLUSTER", "FAILOVER", "TAKEOVER")
        promoted = await asyncio.to_thread(
            _wait_thread, lambda: replica.role() == "master", 10
        )
        got = await asyncio.wait_for(asyncio.gather(*held), 10)
        late = max(got) - promoted
        assert late < WAKE_BOUND, f"last acquire answered {late * 1000:.0f} ms after promotion"
    finally:
        pool.close()
        await pool.wait_closed()
