"""PUBLISH and PUBSUB through a 3-master cluster pool: where they go, what they return."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from clustermgr import create_connection
from clustermgr.abc import AbcConnection
from clustermgr.cluster import ClusterPool, create_cluster_pool, key_slot
from clustermgr.testing.cluster import LocalCluster


@pytest.fixture
async def cluster(redis_cluster: LocalCluster) -> AsyncIterator[ClusterPool]:
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1], maxsize=4)
    yield pool
    pool.close()
    await pool.wait_closed()


@pytest.fixture
async def masters(redis_cluster: LocalCluster) -> AsyncIterator[list[AbcConnection]]:
    """One plain connection per master, in slot order (closed afterwards)."""
    ports = sorted({r.master_port for r in redis_cluster.slots()})
    conns = [await create_connection(("127.0.0.1", port)) for port in ports]
    yield conns
    for conn in conns:
        conn.close()
        await conn.wait_closed()


def _names(prefix: str, count: int) -> list[str]:
    """``count`` channel names with a shared random prefix, on distinct slots."""
    tag = uuid.uuid4().hex[:8]
    names: list[str] = []
    i = 0
    while len(names) < count:
        name = f"{prefix}:{tag}:{i}"
        if key_slot(name) not in {key_slot(n) for n in names}:
            names.append(name)
        i += 1
    return names


async def test_publish_goes_to_the_channel_slot_owner(
    cluster: ClusterPool, masters: list[AbcConnection]
) -> None:
    (channel,) = _names("pubroute", 1)
    owner = cluster.slot_owner(key_slot(channel))
    listener = next(c for c in masters if c.address == owner)
    await listener.execute_pubsub("SUBSCRIBE", channel)
    # The receiving node counts its own subscribers only: 1 on the owner, 0 elsewhere.
    counts = [await cluster.execute("PUBLISH", channel, str(i)) for i in range(12)]
    assert counts == [1] * 12


async def test_one_publisher_keeps_its_order_on_a_channel(cluster: ClusterPool) -> None:
    (name,) = _names("puborder", 1)
    await cluster.execute_pubsub("SUBSCRIBE", name)
    channel = cluster.pubsub_channels[name]
    try:
        for _run in range(2):
            for i in range(60):
                await cluster.execute("PUBLISH", name, str(i))
            got = [int(await asyncio.wait_for(channel.get(), 3)) for _ in range(60)]
            assert got == list(range(60))
    finally:
        await cluster.execute_pubsub("UNSUBSCRIBE", name)


async def test_pubsub_introspection_merges_every_master(
    cluster: ClusterPool, masters: list[AbcConnection]
) -> None:
    names = _names("introspect", 3)
    pattern = names[0].rsplit(":", 1)[0] + ":*"
    for conn, name in zip(masters, names, strict=True):  # one channel per master
        await conn.execute_pubsub("SUBSCRIBE", name)
    await masters[0].execute_pubsub("SUBSCRIBE", names[1])  # names[1] twice, on two nodes
    await masters[1].execute_pubsub("PSUBSCRIBE", pattern)
    await masters[2].execute_pubsub("PSUBSCRIBE", pattern + "x")
    plain = [await create_connection(c.address) for c in masters]
    try:
        for _ in range(3):  # not one random node's view
            found = await cluster.execute("PUBSUB", "CHANNELS", pattern)
            assert sorted(found) == sorted(n.encode() for n in names)
            numsub = await cluster.execute("PUBSUB", "NUMSUB", names[2], names[1], "none")
            assert numsub == [names[2].encode(), 1, names[1].encode(), 2, b"none", 0]
            each = [await c.execute("PUBSUB", "NUMPAT") for c in plain]
            assert await cluster.execute("PUBSUB", "NUMPAT") == sum(each)
    finally:
        for conn in plain:
            conn.close()
            await conn.wait_closed()
