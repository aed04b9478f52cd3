"""A ClusterPool used only for pub/sub follows a failover as fast as one that sends commands
(issue 14); UNSUBSCRIBE without names and re-SUBSCRIBE answer as a plain pool does."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

import pytest

from clustermgr import create_pool
from clustermgr.cluster import create_cluster_pool
from clustermgr.cluster.refresh import RefreshOptions
from clustermgr.errors import RedisError
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.process import LocalServer

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


FOLLOW_BOUND = 0.5
"""Seconds from the promotion until a pub/sub-only pool delivers again (it learns the
new map by polling every 50 ms once its pub/sub connection is lost; before, it
backed off to one reload a second)."""


def _promoted_at(replica: LocalServer, timeout: float) -> float:
    """Poll ``replica`` every 2 ms from a thread; the monotonic time it is master."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if replica.role() == "master":
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise AssertionError(f"{replica!r} was not promoted")


@pytest.mark.parametrize(
    ("command", "period"),
    [("SUBSCRIBE", 30.0), ("SUBSCRIBE", None), ("SSUBSCRIBE", None)],
)
async def test_pubsub_only_cluster_pool_follows_master_kill(
    local_cluster_factory: Callable[..., LocalCluster], command: str, period: float | None
) -> None:
    """SIGKILL the master holding the subscription: delivery resumes within the bound
    of the replica's promotion, though the pool sends no command (the periodic reload
    is far off or off)."""
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes, refresh=RefreshOptions(period=period))
    pub = await create_cluster_pool(cluster.startup_nodes)
    name = _name("home")
    shard = command == "SSUBSCRIBE"
    loop = asyncio.get_running_loop()
    received: list[float] = []
    try:
        await asyncio.wait_for(pool.execute_pubsub(command, name, name), 10)
        channel = (pool.pubsub_shard_channels if shard else pool.pubsub_channels)[name]
        if shard:
            victim = cluster.node_for_key(name)
        else:
            home = pool._pubsub._home
            assert home is not None
            victim = cluster.node_by_port(home.address[1])
        (replica,) = cluster.replicas_of(victim)
        cluster.kill(victim)
        promoted = await asyncio.to_thread(_promoted_at, replica, 30)

        async def publish() -> None:
            for _ in range(500):  # about 10 s
                with contextlib.suppress(RedisError):
                    await pub.execute("SPUBLISH" if shard else "PUBLISH", name, "m")
                await asyncio.sleep(0.02)

        async def listen() -> None:
            while True:
                assert await channel.get() == b"m"
                received.append(loop.time())

        publisher = asyncio.ensure_future(publish())
        listener = asyncio.ensure_future(listen())
        try:
            for _ in range(200):  # about 10 s
                if received:
                    break
                await asyncio.sleep(0.05)
        finally:
            for task in (publisher, listener):
                task.cancel()
            await asyncio.gather(publisher, listener, return_exceptions=True)
        assert received, "no delivery after the promotion"
        late = received[0] - promoted
        assert late < FOLLOW_BOUND, f"first delivery {late * 1000:.0f} ms after the promotion"
    finally:
        for closing in (pool, pub):
            closing.close()
            await asyncio.wait_for(closing.wait_closed(), 10)


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
