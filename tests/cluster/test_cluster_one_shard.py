"""A cluster pool over a one-shard cluster behaves as aioredis' pool where it can.

With one master every key is on it, so a connection asked for without a key
is well defined; several masters still refuse one (``RouteError``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from clustermgr import create_connection, register_with_aioredis
from clustermgr.cluster import ClusterPool, create_cluster_pool
from clustermgr.errors import ArgumentError, ArgumentTypeError, MaxClientsError, RouteError
from clustermgr.testing.cluster import LocalCluster


@pytest.fixture(scope="module")
def one_shard() -> Iterator[LocalCluster]:
    cluster = LocalCluster(masters=1, replicas_per_master=0)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def pool(one_shard: LocalCluster) -> AsyncIterator[ClusterPool]:
    pool = await create_cluster_pool(one_shard.startup_nodes, minsize=1, maxsize=4)
    yield pool
    pool.close()
    await pool.wait_closed()


async def test_keyless_acquire_on_one_shard_gets_its_master(pool: ClusterPool) -> None:
    conn = await pool.acquire()
    try:
        assert await conn.execute(b"SET", "one:k", "v") == b"OK"
        assert await conn.execute(b"GET", "one:k") == b"v"
    finally:
        pool.release(conn)
    async with pool.get() as conn:  # the pool.get() / `with await pool` forms
        assert await conn.execute(b"PING") == b"PONG"
    shared = pool.get_connection()
    assert shared is not None and not shared.closed


async def test_aioredis_transactions_run_on_one_shard(pool: ClusterPool) -> None:
    aioredis = pytest.importorskip("aioredis")
    register_with_aioredis()
    redis = aioredis.Redis(pool)
    tr = redis.multi_exec()
    first, second = tr.set("one:a", "1"), tr.incr("one:a")
    assert await tr.execute() == [True, 2]
    assert await first is True and await second == 2
    pipe = redis.pipeline()
    pipe.get("one:a")
    pipe.get("one:none")
    assert await pipe.execute() == [b"2", None]


async def test_sizes_are_aggregates_over_the_node_pools(pool: ClusterPool) -> None:
    assert (pool.minsize, pool.maxsize) == (1, 4)
    assert pool.size == 1 and pool.freesize == 1
    conn = await pool.acquire()
    assert pool.size >= 1 and pool.freesize == pool.size - 1
    pool.release(conn)
    assert pool.freesize == pool.size
    await pool.clear()
    assert pool.freesize == 0


async def test_bad_arguments_fail_as_in_aioredis(one_shard: LocalCluster) -> None:
    with pytest.raises(ArgumentTypeError):
        await create_cluster_pool(one_shard.startup_nodes, pool_cls=type)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError):
        await create_cluster_pool(one_shard.startup_nodes, minsize=3, maxsize=2)


async def test_keyless_acquire_on_several_shards_is_refused(
    redis_cluster: LocalCluster,
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1])
    try:
        with pytest.raises(RouteError):
            await pool.acquire()
        with pytest.raises(RouteError):
            pool.get_connection()
    finally:
        pool.close()
        await pool.wait_closed()




async def test_startup_fails_when_no_master_opens_minsize(one_shard: LocalCluster) -> None:
    admin = await create_connection(one_shard.startup_nodes[0])
    try:
        await admin.execute(b"CONFIG", b"SET", b"maxclients", b"2")
        with pytest.raises(MaxClientsError):
            await create_cluster_pool(one_shard.startup_nodes, minsize=3)
    finally:
        await admin.execute(b"CONFIG", b"SET", b"maxclients", b"10000")
        admin.close()
        await admin.wait_closed()
