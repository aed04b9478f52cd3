"""WaitReplicas: writes followed by WAIT on their own connection."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import WrongTypeError
from clustermgr.replication import NotReplicatedError, WaitReplicas
from clustermgr.sentinel import create_sentinel_pool
from clustermgr.testing import LocalCluster, LocalSentinelGroup


async def test_sentinel_master_write_waits_for_its_replica(
    redis_sentinel: LocalSentinelGroup,
) -> None:
    pool = await create_sentinel_pool(redis_sentinel.sentinel_addresses, redis_sentinel.service)
    try:
        safe = WaitReplicas(pool, replicas=1, timeout=2)
        key = f"wait:{uuid.uuid4().hex}"
        assert await safe.execute("SET", key, "v") == b"OK"
        # Confirmed by the replica: it is there now.
        replica = redis_sentinel.replicas[0]
        assert replica.command("GET", key) == "v"
        assert await safe.execute("GET", key) == b"v"  # reads pass straight through
        many = await asyncio.gather(*(safe.execute("INCR", key + ":n") for _ in range(20)))
        assert sorted(many) == list(range(1, 21))
        # More replicas than exist: applied on the master, but not confirmed.
        strict = WaitReplicas(pool, replicas=2, timeout=0.1)
        with pytest.raises(NotReplicatedError) as info:
            await strict.execute("SET", key, "w")
        assert info.value.may_have_executed is True
        assert (info.value.acked, info.value.wanted) == (1, 2)
        assert await pool.execute("GET", key) == b"w"
        with pytest.raises(WrongTypeError):
            await safe.execute("LPUSH", key, "x")
        assert pool.size >= 1 and safe.size == pool.size  # attributes are forwarded
    finally:
        pool.close()
        await pool.wait_closed()


async def test_cluster_write_waits_on_the_owning_master(redis_cluster: LocalCluster) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        safe = WaitReplicas(pool, replicas=1, timeout=2)
        keys = [f"wait:{i}:{uuid.uuid4().hex}" for i in range(30)]
        assert await asyncio.gather(*(safe.execute("SET", k, k) for k in keys)) == [b"OK"] * 30
        for key in keys[:5]:
            replica = redis_cluster.replicas_of(redis_cluster.node_for_key(key))[0]
            with replica.connect() as admin:
                admin.command("READONLY")
                assert admin.command("GET", key) == key
    finally:
        pool.close()
        await pool.wait_closed()


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        WaitReplicas(object(), replicas=0)
    with pytest.raises(ValueError):
        WaitReplicas(object(), replicas=1, timeout=0)
