"""A ClusterPool used only for pub/sub follows a failover as fast as one that sends commands
(issue 14); UNSUBSCRIBE without names and re-SUBSCRIBE answer as a plain pool does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from clustermgr import create_pool
from clustermgr.cluster import create_cluster_pool
from clustermgr.cluster.refresh import RefreshOptions
from clustermgr.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(150)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_cluster_unsubscribe_all_one_confirmation_per_channel(
    redis_cluster: LocalCluster,
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1])
    plain = await create_pool(redis_cluster.startup_nodes[0])
    a, b = _name("u"), _name("u")
    try:
        await asyncio.wait_for(plain.execute_pubsub("SUBSCRIBE", a, b), 5)
        expected = await asyncio.wait_for(plain.execute_pubsub("UNSUBSCRIBE"), 5)
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", a, b), 5)
        got = await asyncio.wait_for(pool.execute_pubsub("UNSUBSCRIBE"), 5)
        assert len(got) == len(expected) == 2, (got, expected)
        assert {reply[1] for reply in got} == {a.encode(), b.encode()}
        nothing = await asyncio.wait_for(pool.execute_pubsub("UNSUBSCRIBE"), 5)
        assert nothing == await asyncio.wait_for(plain.execute_pubsub("UNSUBSCRIBE"), 5)
    finally:
        pool.close()
        plain.close()
        await pool.wait_closed()
        await plain.wait_closed()


@pytest.mark.parametrize(
    ("command", "period"),
    [("SUBSCRIBE", 30.0), ("SUBSCRIBE", None), ("SSUBSCRIBE", None)],
)
async def test_pubsub_only_cluster_pool_follows_master_kill(
    local_cluster_factory: Callable[..., LocalCluster], command: str, period: float | None
) -> None:
    """SIGKILL the master holding the subscription: delivery resumes promptly after the
    cluster failed over, though the pool sends no command (the periodic reload is far off)."""
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes, refresh=RefreshOptions(period=period))
    name = _name("home")
    shard = command == "SSUBSCRIBE"
    try:
        await asyncio.wait_for(pool.execute_pubsub(command, name, name), 10)
        channel = (pool.pubsub_shard_channels if shard else pool.pubsub_channels)[name]
        if shard:
            victim = cluster.node_for_key(name)
        else:
            home = pool._pubsub._home
            assert home is not None
            victim = cluster.node_by_port(home.address[1])
        cluster.kill(victim)
        await asyncio.to_thread(cluster.wait_ok, 40)
        loop = asyncio.get_running_loop()
        ok_at = loop.time()
        got = None
        pub = await create_cluster_pool([n.address for n in cluster.available_nodes])
        try:
            for _ in range(40):  # about 20 s
                await pub.execute("SPUBLISH" if shard else "PUBLISH", name, "m")
                try:
                    got = await asyncio.wait_for(channel.get(), 0.5)
                    break
                except asyncio.TimeoutError:
                    pass
            gap = loop.time() - ok_at
            assert got == b"m" and gap < 5, f"no delivery for {gap:.1f}s after the cluster was ok"
            await asyncio.sleep(0.3)
            assert channel.qsize == 0  # delivered once
        finally:
            pub.close()
            await pub.wait_closed()
    finally:
        pool.close()
        await asyncio.wait_for(pool.wait_closed(), 10)


@pytest.mark.parametrize("command", ["SUBSCRIBE", "SSUBSCRIBE"])
async def test_cluster_resubscribe_after_user_close_gets_a_fresh_channel(
    redis_cluster: LocalCluster, command: str
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    pub = await create_cluster_pool(redis_cluster.startup_nodes)
    name = _name("c")
    shard = command == "SSUBSCRIBE"
    view = pool.pubsub_shard_channels if shard else pool.pubsub_channels
    try:
        await asyncio.wait_for(pool.execute_pubsub(command, name), 5)
        old = view[name]
        old.close()  # the user ends their reader, then subscribes the name again
        await asyncio.wait_for(pool.execute_pubsub(command, name), 5)
        channel = view[name]
        assert channel is not old and channel.is_active
        await pub.execute("SPUBLISH" if shard else "PUBLISH", name, "m")
        assert await asyncio.wait_for(channel.get(), 3) == b"m"
        assert not old.is_active
    finally:
        for closing in (pool, pub):
            closing.close()
            await closing.wait_closed()
