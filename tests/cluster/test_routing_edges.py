"""ClusterPool edges the routing core must get right: execute_batch through redirects,
bad batch input, fan-out through failover (each test owns its cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from clustermgr.cluster import RefreshOptions, create_cluster_pool, key_slot
from clustermgr.errors import ConnectionClosedError, RedisError
from clustermgr.testing.cluster import LocalCluster

ClusterFactory = Callable[..., LocalCluster]


def _other_master(cluster: LocalCluster, slot: int) -> object:
    owner = cluster.node_for_slot(slot)
    return next(m for m in cluster.masters if m.port != owner.port)


async def test_execute_batch_keeps_slot_order_through_ask_and_moved(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=0)
    pool = await create_cluster_pool(
        cluster.startup_nodes, minsize=4, refresh=RefreshOptions(period=None)
    )
    try:
        key = "{order}list"
        slot = key_slot(key)
        target = _other_master(cluster, slot)
        migration = await asyncio.to_thread(cluster.begin_migration, slot, target)
        # The key does not exist on the source: every RPUSH is answered ASK.
        replies = await pool.execute_batch([("RPUSH", key, i) for i in range(300)])
        assert replies == list(range(1, 301))
        await asyncio.to_thread(migration.finish)
        # The pool has not refreshed: every command of this batch is answered MOVED.
        replies = await pool.execute_batch([("RPUSH", key, i) for i in range(300, 600)])
        assert replies == list(range(301, 601))
        assert await pool.execute("LRANGE", key, 0, -1) == [b"%d" % i for i in range(600)]
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.mark.parametrize(
    "bad",
    [None, "SET", ("SET", "{bad}k", object()), ("SET", "{bad}k", True), (), (None, "{bad}k")],
    ids=["none", "str", "object-arg", "bool-arg", "empty", "none-name"],
)
async def test_execute_batch_rejects_bad_input_before_sending(
    redis_cluster: LocalCluster, bad: object
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        keys = [f"{{rej{i}}}k" for i in range(12)]
        await pool.execute("DEL", *keys)
        commands: list[object] = [("MSET", keys[0], "1", keys[1], "1")]  # cross-slot: split
        commands += [("SET", k, "1") for k in keys[2:]]
        commands.append(bad)
        with pytest.raises(TypeError):
            await pool.execute_batch(commands)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert await pool.execute("EXISTS", *keys) == 0  # nothing was sent
        with pytest.raises(TypeError):
            await pool.execute_batch("SET")  # type: ignore[arg-type]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_execute_batch_survives_a_node_pool_closed_under_it(
    redis_cluster: LocalCluster,
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        keys = [f"{{np{i}}}k" for i in range(30)]
        victim = next(iter(pool.node_pools.values()))
        victim.close()  # as when a node pool is retired after a topology change
        replies = await pool.execute_batch([("SET", k, "v") for k in keys])
        assert replies == [b"OK"] * len(keys)
        assert await pool.execute("EXISTS", *keys) == len(keys)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_fanout_follows_a_failover(local_cluster_factory: ClusterFactory) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=1)
    pool = await create_cluster_pool(cluster.startup_nodes, refresh=RefreshOptions(period=None))
    try:
        await pool.execute("SET", "{fan}k", "v")
        master = cluster.masters[0]
        replica = cluster.replicas_of(master)[0]
        await asyncio.to_thread(cluster.failover, replica)
        # The pool still routes to the demoted master, which answers READONLY.
        assert await pool.execute("FLUSHALL") in (b"OK", "OK")
        assert await pool.execute("DBSIZE") == 0
    finally:
        pool.close()
        await pool.wait_closed()


async def test_split_command_follows_moved(local_cluster_factory: ClusterFactory) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=0)
    pool = await create_cluster_pool(cluster.startup_nodes, refresh=RefreshOptions(period=None))
    try:
        keys = [f"{{split{i}}}k" for i in range(20)]
        await pool.execute("MSET", *[x for k in keys for x in (k, k)])
        slot = key_slot(keys[0])
        await asyncio.to_thread(cluster.migrate_slot, slot, _other_master(cluster, slot))
        assert await pool.execute("MGET", *keys) == [k.encode() for k in keys]
        assert await pool.execute("DEL", *keys) == len(keys)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_execute_batch_failures_say_whether_they_may_have_run(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory(masters=2, replicas_per_master=0)
    pool = await create_cluster_pool(
        cluster.startup_nodes, read_timeout=0.3, retry_timeout=1.5,
        refresh=RefreshOptions(period=None, node_timeout=0.3),
    )
    key, other = "{run}a", "{run}b"
    node = cluster.node_for_key(key)
    try:
        await pool.execute("SET", other, "x")
        await asyncio.to_thread(cluster.pause, node)
        # Both are written, then the connection is dropped for stalling.
        replies = await pool.execute_batch([("SET", key, "v"), ("GET", other)])
    finally:
        await asyncio.to_thread(cluster.resume, node)
        pool.close()
        await pool.wait_closed()
    write, read = replies
    assert isinstance(write, ConnectionClosedError) and write.may_have_executed
    assert isinstance(read, RedisError) and read.may_have_executed, repr(read)
