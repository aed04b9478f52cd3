"""ClusterPool pub/sub on the shared subscription machinery: str keys, close with a node down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from clustermgr import create_connection, errors
from clustermgr.cluster import create_cluster_pool
from clustermgr.testing.cluster import LocalCluster


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_cluster_str_keys_find_channels(redis_cluster: LocalCluster) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1])
    name, pattern, shard = _name("c"), _name("p") + "*", _name("s")
    try:
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", name), 5)
        await asyncio.wait_for(pool.execute_pubsub("PSUBSCRIBE", pattern), 5)
        await asyncio.wait_for(pool.execute_pubsub("SSUBSCRIBE", shard), 5)
        assert pool.pubsub_channels[name] is pool.pubsub_channels[name.encode()]
        assert pool.pubsub_patterns[pattern] is pool.pubsub_patterns[pattern.encode()]
        assert pool.pubsub_shard_channels[shard] is pool.pubsub_shard_channels[shard.encode()]
        assert name in pool.pubsub_channels and "nope" not in pool.pubsub_channels
    finally:
        pool.close()
        await pool.wait_closed()


async def _readers_end(*readers: asyncio.Future[Any]) -> None:
    done, pending = await asyncio.wait(readers, timeout=2)
    for task in pending:
        task.cancel()
    assert not pending, f"{len(pending)} readers still waiting"
    for task in done:
        assert task.exception() is None and task.result() is None, task


async def test_cluster_close_with_a_node_down(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes)
    victim = cluster.masters[0]
    on_victim = [k for k in (f"shard{{{i}}}" for i in range(200))
                 if cluster.node_for_key(k).port == victim.port]
    first, later = on_victim[:2]
    try:
        await asyncio.wait_for(pool.execute_pubsub("SSUBSCRIBE", first), 5)
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", "plain"), 5)
        shard = pool.pubsub_shard_channels[first.encode()]
        plain = pool.pubsub_channels[b"plain"]
        readers = [asyncio.ensure_future(c.get()) for c in (shard, shard, plain, plain)]
        cluster.kill(victim)
        await asyncio.sleep(0.3)
        pending = [
            asyncio.ensure_future(pool.execute_pubsub("SSUBSCRIBE", later)),
            asyncio.ensure_future(pool.execute_pubsub("SUNSUBSCRIBE", first)),
        ]
        await asyncio.sleep(0.1)
    finally:
        pool.close()
        await asyncio.wait_for(pool.wait_closed(), 5)
    with pytest.raises(errors.PoolClosedError):
        await asyncio.wait_for(pending[0], 1)
    # The SUNSUBSCRIBE resolved before close (nothing to wait for) or failed typed.
    await asyncio.wait_for(asyncio.gather(pending[1], return_exceptions=True), 1)
    assert pending[1].done() and (
        pending[1].exception() is None
        or isinstance(pending[1].exception(), errors.PoolClosedError)
    )
    await _readers_end(*readers)
    assert not pool.in_pubsub


async def test_cluster_subscribe_refused_fails_at_once(redis_cluster: LocalCluster) -> None:
    user = _name("nochan")
    admins = [await create_connection(address) for address in redis_cluster.startup_nodes]
    for admin in admins:  # ACLs are per node
        await admin.execute("ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "resetchannels")
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1], username=user,
                                     password="pw")
    try:
        for command in ("SUBSCRIBE", "SSUBSCRIBE"):
            with pytest.raises(errors.NoPermissionError):
                await asyncio.wait_for(pool.execute_pubsub(command, "forbidden"), 3)
        assert not pool.in_pubsub
    finally:
        pool.close()
        await asyncio.wait_for(pool.wait_closed(), 3)
        for admin in admins:
            await admin.execute("ACL", "DELUSER", user)
            admin.close()
            await admin.wait_closed()
