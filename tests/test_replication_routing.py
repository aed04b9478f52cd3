"""WaitReplicas over a cluster pool: routed and retried like the pool's execute, bounded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from clustermgr.cluster import create_cluster_pool, key_slot
from clustermgr.errors import CrossSlotError, TimeoutError
from clustermgr.replication import WaitReplicas
from clustermgr.testing import LocalCluster


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("EVAL", "return redis.call('PING')", 0), b"PONG"),
        (("PUBLISH", "wr-chan", "m"), 0),
    ],
    ids=["eval-no-keys", "publish"],
)
async def test_a_keyless_write_goes_to_a_master_and_waits_there(
    redis_cluster: LocalCluster, command: tuple[Any, ...], expected: Any
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        safe = WaitReplicas(pool, replicas=1, timeout=2)
        assert await asyncio.wait_for(safe.execute(*command), 10) == expected
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_cross_slot_write_is_split_per_slot_or_refused_before_sending(
    redis_cluster: LocalCluster,
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        tag = uuid.uuid4().hex
        a, b = f"{{wa{tag}}}1", f"{{wb{tag}}}2"
        assert key_slot(a) != key_slot(b)
        safe = WaitReplicas(pool, replicas=1, timeout=2)
        assert await asyncio.wait_for(safe.execute("MSET", a, "1", b, "2"), 10) == b"OK"
        assert await pool.execute("MGET", a, b) == [b"1", b"2"]
        assert await asyncio.wait_for(safe.execute("DEL", a, b), 10) == 2
        with pytest.raises(CrossSlotError):  # atomic: cannot be split
            await safe.execute("SMOVE", a, b, "m")
    finally:
        pool.close()
        await pool.wait_closed()


async def test_tryagain_during_a_migration_is_backed_off_and_retried(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=1)
    pool = await create_cluster_pool(cluster.startup_nodes)
    try:
        a, b = "{wt}a", "{wt}b"
        await pool.execute("MSET", a, "1", b, "1")
        slot = key_slot(a)
        source = cluster.node_for_slot(slot)
        target = next(m for m in cluster.masters if m.port != source.port)
        migration = await asyncio.to_thread(cluster.begin_migration, slot, target)
        # One key moved, the other not yet: MSET of both is answered TRYAGAIN.
        await asyncio.to_thread(
            source.command, "MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", b
        )

        async def finish_soon() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(lambda: (migration.move_keys(), migration.finish()))

        finisher = asyncio.ensure_future(finish_soon())
        try:
            safe = WaitReplicas(pool, replicas=1, timeout=2)
            assert await asyncio.wait_for(safe.execute("MSET", a, "3", b, "3"), 20) == b"OK"
        finally:
            await finisher
        assert await pool.execute("MGET", a, b) == [b"3", b"3"]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_write_to_a_paused_master_is_bounded_and_cancellable(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=1, replicas_per_master=1)
    pool = await create_cluster_pool(cluster.startup_nodes, read_timeout=1.0, retry_timeout=3)
    master = cluster.masters[0]
    loop = asyncio.get_running_loop()
    paused = False
    try:
        key = f"wp:{uuid.uuid4().hex}"
        safe = WaitReplicas(pool, replicas=1, timeout=1, margin=0.5)
        assert await safe.execute("SET", key, "0") == b"OK"  # warm: connections exist
        await asyncio.to_thread(cluster.pause, master)
        paused = True
        started = loop.time()
        with pytest.raises(TimeoutError) as caught:
            await asyncio.wait_for(safe.execute("INCR", key), 10)
        assert caught.value.may_have_executed
        assert 1.4 < loop.time() - started < 3  # WAIT's timeout plus the margin
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):  # the caller gives up first
            await asyncio.wait_for(safe.execute("INCR", key), 0.3)
        assert loop.time() - started < 1
    finally:
        if paused:
            await asyncio.to_thread(cluster.resume, master)
        pool.close()
        await pool.wait_closed()


async def test_a_write_the_pool_sends_to_every_master_goes_to_each_with_its_wait(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=1)
    pool = await create_cluster_pool(cluster.startup_nodes)
    try:
        keys = [f"fa:{i}" for i in range(50)]
        await pool.execute("MSET", *(x for k in keys for x in (k, "1")))
        assert len({cluster.node_for_key(k).port for k in keys}) == 2
        safe = WaitReplicas(pool, replicas=1, timeout=2)
        assert await asyncio.wait_for(safe.execute("FLUSHALL"), 10) == b"OK"
        assert await pool.execute("DBSIZE") == 0
    finally:
        pool.close()
        await pool.wait_closed()
