"""ClusterPool.execute_batch: bad input anywhere is refused before anything is
sent; one slot's commands keep their order through TRYAGAIN, redirects and the
split (cross-slot) commands around them; a close mid-batch is a typed outcome."""

from __future__ import annotations

import asyncio
import itertools
import socket
import uuid
from collections.abc import Callable
from typing import Any

import hiredis
import pytest

from clustermgr.cluster import ClusterPool, RefreshOptions, create_cluster_pool, key_slot
from clustermgr.errors import ConnectionForcedCloseError, PoolClosedError, RedisError
from clustermgr.testing.cluster import LocalCluster

ClusterFactory = Callable[..., LocalCluster]


def _keys_on_two_nodes(pool: ClusterPool) -> tuple[str, str]:
    first = "{bx0}k"
    for i in range(1, 200):
        other = f"{{bx{i}}}k"
        if pool.slot_owner(key_slot(other)) != pool.slot_owner(key_slot(first)):
            return first, other
    raise AssertionError("no two owners")


@pytest.mark.parametrize(
    ("bad", "kwargs", "error"),
    [
        (("WATCH", "{B}"), {}, TypeError),
        (("SET", "{B}", "\udcff"), {}, ValueError),
        (("SELECT", "{B}"), {}, TypeError),
        (("CLIENT", "REPLY", "OFF"), {}, TypeError),
        (("SET", "{B}", "v"), {"encoding": "no-such-codec"}, LookupError),
        (("SET", "{B}", "v"), {"encodng": "utf-8"}, TypeError),
    ],
    ids=["watch-key", "lone-surrogate", "select", "client-reply-off", "bad-codec",
         "unknown-keyword"],
)
async def test_bad_command_mid_batch_sends_nothing(
    redis_cluster: LocalCluster, bad: tuple[Any, ...], kwargs: dict[str, Any],
    error: type[Exception],
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        a, b = _keys_on_two_nodes(pool)
        bad = tuple(x.replace("{B}", b) if isinstance(x, str) else x for x in bad)
        await pool.execute("DEL", a, encoding=None)
        await pool.execute("DEL", b, encoding=None)
        with pytest.raises(error):
            await asyncio.wait_for(
                pool.execute_batch([("INCR", a), bad, ("INCR", a)], **kwargs), 10
            )
        assert await pool.execute("GET", a) is None
        assert await pool.execute("GET", b) is None
    finally:
        pool.close()
        await pool.wait_closed()


async def test_tryagain_holds_back_the_later_commands_of_its_slot(
    local_cluster_factory: ClusterFactory,
) -> None:
    """[MSET {t}a 10 {t}b 10, INCR {t}a] with {t}b migrated: INCR waits for MSET."""
    cluster = local_cluster_factory(masters=2, replicas_per_master=0)
    pool = await create_cluster_pool(cluster.startup_nodes, refresh=RefreshOptions(period=None))
    try:
        a, b = "{t}a", "{t}b"
        await pool.execute("SET", a, "1")
        await pool.execute("SET", b, "1")
        slot = key_slot(a)
        source = cluster.node_for_slot(slot)
        target = next(m for m in cluster.masters if m.port != source.port)
        migration = await asyncio.to_thread(cluster.begin_migration, slot, target)
        await asyncio.to_thread(
            source.command, "MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", b
        )
        batch = asyncio.ensure_future(
            pool.execute_batch([("MSET", a, "10", b, "10"), ("INCR", a)])
        )
        await asyncio.sleep(0.3)
        assert not batch.done()  # MSET keeps getting TRYAGAIN; INCR has not been sent
        assert await pool.execute("GET", a) == b"1"

        def finish() -> None:
            migration.move_keys()
            migration.finish()

        await asyncio.to_thread(finish)
        assert await asyncio.wait_for(batch, 20) == [b"OK", 11]
        assert await pool.execute("GET", a) == b"11"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_cross_slot_command_keeps_order_with_the_commands_around_it(
    redis_cluster: LocalCluster,
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        k, j = "{oa}k", "{ob}j"
        await pool.execute("DEL", k, j)
        replies = await asyncio.wait_for(pool.execute_batch([
            ("SET", k, "1"), ("MSET", k, "2", j, "2"), ("GET", k), ("MGET", k, j),
            ("DEL", k, j), ("GET", j), ("SET", j, "3"), ("DBSIZE",), ("GET", j),
        ]), 10)
        assert replies[:4] == [b"OK", b"OK", b"2", [b"2", b"2"]]
        assert replies[4:7] == [2, None, b"OK"]
        assert replies[8] == b"3"
    finally:
        pool.close()
        await pool.wait_closed()


_APPENDS = 20000


async def test_moved_then_owned_mid_batch_resends_only_the_refused_in_order(
    local_cluster_factory: ClusterFactory,
) -> None:
    """The documented limit: the node refuses (MOVED) the first APPENDs of a write,
    then takes the slot and serves the rest. Those ran first and are not resent;
    the refused ones are resent in their order: every APPEND is applied once, and
    the value is the served run followed by the refused run (at most one descent)."""
    cluster = local_cluster_factory(masters=2, replicas_per_master=0)
    key = "{ord}k"
    slot = key_slot(key)
    a = cluster.node_for_slot(slot)
    b = next(m for m in cluster.masters if m.port != a.port)
    a_id = cluster.node_id(a)
    for attempt in range(3):
        pool = await create_cluster_pool(
            cluster.startup_nodes, refresh=RefreshOptions(period=None), maxsize=2
        )
        try:
            await pool.execute("DEL", key)

            def stale_and_reverse() -> None:
                cluster.migrate_slot(slot, b)  # the pool is not told
                cluster.begin_migration(slot, a).move_keys()  # B MIGRATING, A IMPORTING

            await asyncio.to_thread(stale_and_reverse)
            with socket.create_connection(a.address) as sock:
                sock.sendall(hiredis.pack_command(("ASKING",))
                             + hiredis.pack_command(("SET", key, "")))
                sock.recv(100)
                batch = asyncio.ensure_future(
                    pool.execute_batch([("APPEND", key, f"{i},") for i in range(_APPENDS)])
                )
                for _ in range(2 + attempt):  # vary the moment the slot changes hands
                    await asyncio.sleep(0)
                sock.sendall(hiredis.pack_command(("CLUSTER", "SETSLOT", slot, "NODE", a_id)))
                replies = await asyncio.wait_for(batch, 60)
                sock.recv(100)
            await asyncio.to_thread(
                lambda: [m.command("CLUSTER", "SETSLOT", slot, "NODE", a_id)
                         for m in cluster.masters]
            )
            await asyncio.to_thread(cluster.wait_ok)
            assert not [r for r in replies if isinstance(r, BaseException)]
            value = await pool.execute("GET", key)
            order = [int(x) for x in value.decode().split(",") if x]
            assert sorted(order) == list(range(_APPENDS))
            descents = sum(1 for x, y in itertools.pairwise(order) if y < x)
            assert descents <= 1, order[:20]
            print(f"attempt {attempt}: descents={descents} starts_with={order[0]}")
        finally:
            pool.close()
            await pool.wait_closed()


async def test_close_during_a_batch_is_a_typed_outcome_per_command(
    redis_cluster: LocalCluster,
) -> None:
    tag = uuid.uuid4().hex[:8]
    keys = [f"{{cl{tag}}}:{i}" for i in range(_APPENDS)]  # one slot: one node, one write
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    checker = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        batch = asyncio.ensure_future(pool.execute_batch([("INCR", k) for k in keys]))
        for _ in range(3):  # written (call_soon flush), replies not all read yet
            await asyncio.sleep(0)
        pool.close()
        replies = await asyncio.wait_for(batch, 30)
        await pool.wait_closed()
        assert all(isinstance(r, (int, RedisError)) for r in replies)
        assert any(isinstance(r, ConnectionForcedCloseError) for r in replies)
        said_not_run = [
            i for i, r in enumerate(replies)
            if isinstance(r, BaseException) and not r.may_have_executed  # type: ignore[attr-defined]
        ]
        values: list[Any] = []
        for start in range(0, _APPENDS, 1000):
            values += await checker.execute("MGET", *keys[start:start + 1000])
        assert [i for i in said_not_run if values[i] is not None] == []
        assert all(isinstance(replies[i], PoolClosedError) for i in said_not_run)
    finally:
        for start in range(0, _APPENDS, 1000):
            await checker.execute("DEL", *keys[start:start + 1000])
        checker.close()
        await checker.wait_closed()
