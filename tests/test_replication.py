"""WaitReplicas: writes followed by WAIT on their own connection."""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fake_server import FakeServer

from clustermgr import create_pool
from clustermgr.cluster import create_cluster_pool, key_slot
from clustermgr.errors import ClusterRetryError, ReadOnlyError, RedisError, WrongTypeError
from clustermgr.options import InvalidOptionError, OptionTypeError
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


_BAD_WAIT_OPTIONS: list[tuple[dict[str, Any], str, type[Exception]]] = [
    ({"replicas": 0}, "replicas", InvalidOptionError),
    ({"replicas": True}, "replicas", OptionTypeError),
    ({"replicas": 1.0}, "replicas", OptionTypeError),
    ({"timeout": 0}, "timeout", InvalidOptionError),
    ({"timeout": math.nan}, "timeout", InvalidOptionError),
    ({"timeout": math.inf}, "timeout", InvalidOptionError),
    ({"timeout": None}, "timeout", OptionTypeError),
    ({"timeout": "1"}, "timeout", OptionTypeError),
    ({"max_attempts": 0}, "max_attempts", InvalidOptionError),
    ({"max_attempts": math.nan}, "max_attempts", OptionTypeError),
    ({"max_attempts": math.inf}, "max_attempts", OptionTypeError),
    ({"max_attempts": True}, "max_attempts", OptionTypeError),
    ({"margin": 0}, "margin", InvalidOptionError),
    ({"margin": math.inf}, "margin", InvalidOptionError),
    ({"margin": math.nan}, "margin", InvalidOptionError),
]


@pytest.mark.parametrize(("options", "option", "error"), _BAD_WAIT_OPTIONS)
def test_bad_options_are_refused_at_construction_naming_the_option(
    options: dict[str, Any], option: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        WaitReplicas(object(), **options)
    assert info.value.option == option  # type: ignore[attr-defined]
    assert option in str(info.value)


async def test_cluster_write_follows_moved_and_ask(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=1)
    pool = await create_cluster_pool(cluster.startup_nodes)
    try:
        safe = WaitReplicas(pool, replicas=1, timeout=2)
        # MOVED: the slot moved after the pool read its map.
        key = "wait:moved"
        slot = key_slot(key)
        owner = cluster.node_for_slot(slot)
        target = next(m for m in cluster.masters if m.port != owner.port)
        await asyncio.to_thread(cluster.migrate_slot, slot, target)
        assert pool.slot_owner(slot) == (owner.host, owner.port)  # the pool's map is stale
        assert await safe.execute("SET", key, "v") == b"OK"
        replica = cluster.replicas_of(target)[0]
        with replica.connect() as admin:
            admin.command("READONLY")
            assert admin.command("GET", key) == "v"  # confirmed by the new owner's replica
        # ASK: the slot is being migrated and the key is not on the source.
        other = "wait:ask"
        other_slot = key_slot(other)
        source = cluster.node_for_slot(other_slot)
        destination = next(m for m in cluster.masters if m.port != source.port)
        migration = await asyncio.to_thread(cluster.begin_migration, other_slot, destination)
        assert await safe.execute("SET", other, "w") == b"OK"
        with destination.connect() as admin:
            admin.command("ASKING")
            assert admin.command("GET", other) == "w"
        await asyncio.to_thread(migration.finish)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_sentinel_writes_follow_a_failover(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    group = local_sentinel_factory()
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, maxsize=4, failover_timeout=10.0
    )
    safe = WaitReplicas(pool, replicas=1, timeout=1)
    refused: list[BaseException] = []
    acked = 0
    stop = asyncio.Event()

    async def writer(n: int) -> None:
        nonlocal acked
        for i in itertools.count():
            if stop.is_set():
                return
            try:
                await safe.execute("SET", f"wf:{n}:{i}", "v")
                acked += 1
            except NotReplicatedError:
                await asyncio.sleep(0.05)  # applied, not yet replicated: a legitimate outcome
            except RedisError as exc:
                if not exc.may_have_executed:
                    refused.append(exc)  # plain execute() would have retried this
                await asyncio.sleep(0.05)

    tasks = [asyncio.ensure_future(writer(n)) for n in range(8)]
    try:
        await asyncio.sleep(0.3)
        before = acked
        assert before > 0
        await asyncio.to_thread(group.failover, demote_old_master=True)
        await asyncio.sleep(1.0)
        assert acked > before
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        pool.close()
        await pool.wait_closed()
    assert refused == []


async def test_a_write_that_provably_did_not_run_is_sent_again() -> None:
    async with FakeServer() as server:
        readonly = b"-READONLY You can't write against a read only replica.\r\n"
        server.replies[(b"SET",)] = [readonly, b"+OK\r\n"]
        server.replies[(b"WAIT",)] = b":1\r\n"
        pool = await create_pool(server.address)
        try:
            safe = WaitReplicas(pool, replicas=1, timeout=1)
            assert await safe.execute("SET", "k", "v") == b"OK"
            assert [c[0] for c in server.received].count(b"SET") == 2
            server.replies[(b"SET",)] = readonly
            with pytest.raises(ClusterRetryError) as info:
                await WaitReplicas(pool, max_attempts=3).execute("SET", "k", "v")
            assert isinstance(info.value.last_error, ReadOnlyError)
            assert not info.value.may_have_executed
        finally:
            pool.close()
            await pool.wait_closed()
