"""ClusterPool against the shared 6-node cluster (non-destructive tests)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clustermgr import register_with_aioredis
from clustermgr.abc import AbcPool
from clustermgr.cluster import ClusterPool, create_cluster_pool, key_slot
from clustermgr.errors import (
    CrossSlotError,
    MovedError,
    PoolClosedError,
    RouteError,
    WrongTypeError,
)
from clustermgr.testing.cluster import LocalCluster


@pytest.fixture
async def cluster(redis_cluster: LocalCluster) -> AsyncIterator[ClusterPool]:
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1], maxsize=4)
    yield pool
    pool.close()
    await pool.wait_closed()


async def test_is_an_abc_pool_and_discovers_the_cluster(
    cluster: ClusterPool, redis_cluster: LocalCluster
) -> None:
    assert isinstance(cluster, AbcPool)
    assert cluster.address is None and cluster.db == 0
    slot_map = cluster.slot_map
    assert slot_map is not None and slot_map.covered == 16384
    expected = {(r.start, r.end, r.master_port) for r in redis_cluster.slots()}
    assert {(a, b, addr[1]) for a, b, addr in slot_map.ranges()} == expected
    assert len(cluster.node_pools) == 3  # masters only with read_from="master"


async def test_10000_keys_land_on_the_right_nodes(
    cluster: ClusterPool, redis_cluster: LocalCluster
) -> None:
    keys = [f"route:{i}".encode() for i in range(10_000)]
    replies = await asyncio.gather(*(cluster.execute(b"SET", k, k[::-1]) for k in keys))
    assert all(r == b"OK" for r in replies)
    values = await asyncio.gather(*(cluster.execute(b"GET", k) for k in keys))
    assert values == [k[::-1] for k in keys]
    # Our slot function agrees with the server's CLUSTER KEYSLOT.
    node = redis_cluster.nodes[0]
    for key in keys[::97]:
        assert node.command("CLUSTER", "KEYSLOT", key) == key_slot(key)
    # Every key is stored on the master that owns its slot.
    by_slot: dict[int, set[bytes]] = collections.defaultdict(set)
    for key in keys:
        by_slot[key_slot(key)].add(key)
    pools = cluster.node_pools
    checks = []
    for slot in by_slot:
        owner = cluster.slot_owner(slot)
        assert owner is not None
        checks.append(pools[owner].execute(b"CLUSTER", b"GETKEYSINSLOT", slot, 100_000))
    stored = await asyncio.gather(*checks)
    counts = await asyncio.gather(
        *(
            pools[cluster.slot_owner(s)].execute(b"CLUSTER", b"COUNTKEYSINSLOT", s)  # type: ignore[index]
            for s in by_slot
        )
    )
    for (slot, ours), found, count in zip(by_slot.items(), stored, counts, strict=True):
        assert ours <= set(found), slot
        assert count >= len(ours)
    assert await cluster.execute(b"DEL", *keys) == len(keys)


async def test_multi_key_commands_split_per_slot(cluster: ClusterPool) -> None:
    keys = [f"mk:{i}" for i in range(50)]
    assert len({key_slot(k) for k in keys}) > 10
    pairs = [item for k in keys for item in (k, k.upper())]
    assert await cluster.execute(b"MSET", *pairs) == b"OK"
    assert await cluster.execute(b"MGET", *keys, "mk:none") == [
        k.upper().encode() for k in keys
    ] + [None]
    assert await cluster.execute("mget", *keys[:3], encoding="utf-8") == [
        k.upper() for k in keys[:3]
    ]
    assert await cluster.execute(b"EXISTS", *keys, "mk:none") == 50
    assert await cluster.execute(b"TOUCH", *keys) == 50
    assert await cluster.execute(b"UNLINK", *keys[:10]) == 10
    assert await cluster.execute(b"DEL", *keys) == 40
    # Atomic multi-key commands across slots fail before anything is sent.
    with pytest.raises(CrossSlotError):
        cluster.execute(b"MSETNX", "mk:a", 1, "mk:b", 2)
    with pytest.raises(CrossSlotError):
        cluster.execute(b"RENAME", "mk:a", "mk:b")
    # Same slot thanks to a hash tag: one atomic command.
    assert await cluster.execute(b"MSETNX", "{mk}a", 1, "{mk}b", 2) == 1
    assert await cluster.execute(b"DEL", "{mk}a", "{mk}b") == 2


async def test_keyless_commands(cluster: ClusterPool) -> None:
    await cluster.execute(b"SET", "kl:1", 1)
    assert await cluster.execute(b"PING") == b"PONG"
    assert await cluster.execute(b"DBSIZE") >= 1
    assert b"kl:1" in await cluster.execute(b"KEYS", "kl:*")
    sha = await cluster.execute(b"SCRIPT", b"LOAD", "return 1")
    assert await cluster.execute(b"EVALSHA", sha, 1, "kl:1") == 1
    assert await cluster.execute(b"EVAL", "return redis.call('GET', KEYS[1])", 1, "kl:1") == b"1"
    assert isinstance(await cluster.execute(b"INFO", b"server"), bytes)


async def test_moved_reply_is_followed_and_updates_the_route(cluster: ClusterPool) -> None:
    key = b"moved:key"
    slot = key_slot(key)
    right = cluster._routes[slot]
    wrong = next(p for p in cluster._masters if p is not right)
    cluster._routes[slot] = wrong  # a stale route: the node answers MOVED
    with pytest.raises(MovedError):
        await wrong.execute(b"GET", key)
    assert await cluster.execute(b"SET", key, b"v") == b"OK"
    assert cluster._routes[slot] is right
    assert await cluster.execute(b"GET", key) == b"v"


async def test_exclusive_connections_for_transactions(cluster: ClusterPool) -> None:
    key = "tx:{user1}:balance"
    await cluster.execute(b"SET", key, 10)
    async with cluster.get(b"WATCH", [key]) as conn:
        await conn.execute(b"WATCH", key)
        await conn.execute(b"MULTI")
        conn.execute(b"INCRBY", key, 5)
        conn.execute(b"INCR", "tx:{user1}:count")
        assert await conn.execute(b"EXEC") == [15, 1]
    conn2 = await cluster.acquire(None, [key])
    try:
        assert await conn2.execute(b"GET", key) == b"15"
    finally:
        cluster.release(conn2)
    with pytest.raises(RouteError, match="owns a key"):
        await cluster.acquire()
    with pytest.raises(RouteError):
        async with cluster.get():
            pass
    # Blocking commands get a connection of their own on the key's node.
    pushed = cluster.execute(b"BLPOP", "tx:{user1}:queue", 2)
    await asyncio.sleep(0.05)
    assert await cluster.execute(b"RPUSH", "tx:{user1}:queue", "job") == 1
    assert await pushed == [b"tx:{user1}:queue", b"job"]


async def test_pipelining_in_one_tick(cluster: ClusterPool) -> None:
    futures = [cluster.execute(b"INCR", f"pipe:{i % 7}") for i in range(700)]
    results = await asyncio.gather(*futures)
    assert sorted(results)[-1] == 100
    await cluster.execute(b"DEL", *(f"pipe:{i}" for i in range(7)))


@pytest.mark.parametrize("read_from", ["replica", "prefer_replica", "nearest"])
async def test_replica_reads(redis_cluster: LocalCluster, read_from: str) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes, read_from=read_from)
    try:
        assert await pool.execute(b"SET", "rr:key", "v") == b"OK"
        assert pool._readers is not None
        slot = key_slot("rr:key")
        reader = pool._readers[slot]
        assert reader is not None
        if read_from != "nearest":
            replica_ports = {r.port for r in redis_cluster.replicas}
            assert reader.address[1] in replica_ports  # type: ignore[index]
        for _ in range(50):  # replication is asynchronous
            if await pool.execute(b"GET", "rr:key") == b"v":
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("replica never returned the value")
        # Writes still go to the master.
        assert await pool.execute(b"DEL", "rr:key") == 1
    finally:
        pool.close()
        await pool.wait_closed()


async def test_cluster_wide_scan(cluster: ClusterPool) -> None:
    keys = {f"scan:{i}".encode() for i in range(300)}
    await cluster.execute(b"MSET", *(x for k in keys for x in (k, 1)))
    found = [k async for k in cluster.iscan(match="scan:*", count=50)]
    assert len(found) == len(set(found))
    assert set(found) == keys
    await cluster.execute(b"DEL", *keys)


async def test_pubsub_and_sharded_pubsub(cluster: ClusterPool) -> None:
    replies = await cluster.execute_pubsub(b"SUBSCRIBE", "ps:plain")
    assert replies == [[b"subscribe", b"ps:plain", 1]]
    plain = cluster.pubsub_channels[b"ps:plain"]
    await cluster.execute_pubsub(b"SSUBSCRIBE", "ps:shard{a}", "ps:shard{b}")
    shard_a = cluster.pubsub_shard_channels[b"ps:shard{a}"]
    shard_b = cluster.pubsub_shard_channels[b"ps:shard{b}"]
    assert cluster.in_pubsub == 3
    # PUBLISH counts receivers on the node it ran on only; the bus forwards it.
    await cluster.execute(b"PUBLISH", "ps:plain", "m1")
    assert await cluster.execute(b"SPUBLISH", "ps:shard{a}", "m2") == 1
    assert await cluster.execute(b"SPUBLISH", "ps:shard{b}", "m3") == 1
    assert await asyncio.wait_for(plain.get(), 2) == b"m1"
    assert await asyncio.wait_for(shard_a.get(), 2) == b"m2"
    assert await asyncio.wait_for(shard_b.get(), 2) == b"m3"
    await cluster.execute_pubsub(b"SUNSUBSCRIBE", "ps:shard{a}")
    assert not shard_a.is_active
    assert cluster.in_pubsub == 2


async def test_aioredis_redis_runs_over_a_cluster_pool(cluster: ClusterPool) -> None:
    aioredis = pytest.importorskip("aioredis")
    register_with_aioredis()
    redis = aioredis.Redis(cluster)
    assert await redis.set("aio:a", "1")
    assert await redis.get("aio:a", encoding="utf-8") == "1"
    await redis.set("aio:b", "2")
    assert await redis.mget("aio:a", "aio:b", "aio:none") == [b"1", b"2", None]
    await redis.hmset_dict("aio:h", {"f": "v", "g": "w"})
    assert await redis.hgetall("aio:h", encoding="utf-8") == {"f": "v", "g": "w"}
    assert await redis.delete("aio:a", "aio:b", "aio:h") == 3
    (channel,) = await redis.subscribe("aio:chan")
    await redis.publish("aio:chan", "hello")
    assert await asyncio.wait_for(channel.get(), 2) == b"hello"
    await redis.unsubscribe("aio:chan")


async def test_close_leaves_nothing_behind(redis_cluster: LocalCluster) -> None:
    before = {t for t in asyncio.all_tasks()}
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    await pool.execute(b"SET", "close:k", 1)
    await pool.execute_pubsub(b"SSUBSCRIBE", "close:chan")
    channel = pool.pubsub_shard_channels[b"close:chan"]
    pool.close()
    await pool.wait_closed()
    assert not channel.is_active
    assert pool.closed
    leftover = {
        t for t in asyncio.all_tasks() if t not in before and t is not asyncio.current_task()
    }
    assert not leftover
    with pytest.raises(PoolClosedError, match="closed"):
        await pool.execute(b"GET", "close:k")  # fails when awaited


async def test_bad_arguments_are_clear(redis_cluster: LocalCluster) -> None:
    with pytest.raises(ValueError, match="read_from"):
        await create_cluster_pool(redis_cluster.startup_nodes, read_from="any")
    with pytest.raises(ValueError, match="at least one"):
        await create_cluster_pool([])


async def test_execute_batch_groups_per_node_and_follows_moved(cluster: ClusterPool) -> None:
    commands: list[tuple[Any, ...]] = [(b"SET", f"cb:{i}", i) for i in range(2000)]
    assert await cluster.execute_batch(commands) == [b"OK"] * 2000
    key = b"cb:moved"
    slot = key_slot(key)
    right = cluster._routes[slot]
    wrong = next(p for p in cluster._masters if p is not right)
    cluster._routes[slot] = wrong  # stale route: that node answers MOVED
    replies = await cluster.execute_batch([
        (b"SET", key, b"v"), (b"GET", "cb:5"), (b"MGET", "cb:1", "cb:2", "cb:3"),
        (b"PING",), (b"LPUSH", "cb:5", "x"), (b"GET", key),
    ], encoding="utf-8")
    assert replies[:4] == ["OK", "5", ["1", "2", "3"], "PONG"]
    assert isinstance(replies[4], WrongTypeError)
    assert replies[5] == "v"
    assert cluster._routes[slot] is right


@pytest.mark.parametrize("batch", [[()], [[]], [(b"SET", "empty:k", 1), ()]])
async def test_execute_batch_with_an_empty_command_is_refused_before_sending(
    cluster: ClusterPool, batch: list[Any]
) -> None:
    sent = cluster.stats().commands
    with pytest.raises(TypeError, match="non-empty sequence"):
        await cluster.execute_batch(batch)
    assert cluster.stats().commands == sent  # nothing went out, the SET beside it included
    assert await cluster.execute(b"EXISTS", "empty:k") == 0
