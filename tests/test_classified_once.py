"""A command is classified once on its way down: no layer looks its name up again.

Every name lookup of the data path goes through ``protocol.lookup_command``
(the connection's and the pools' special-command tables, batch checks,
``is_blocking``, ``is_pubsub_command``) or ``CommandTable.lookup`` (a routed
pool's classification). Both are wrapped with counters in every module that
uses them, and commands are sent through real standalone, cluster and
sentinel pools. Only lookups of the commands sent here (SET, GET) count:
the pools' own background commands (ROLE, PING, ...) are not theirs.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from typing import Any

import pytest

from clustermgr import create_connection, create_pool
from clustermgr.cluster import create_cluster_pool
from clustermgr.commands import CommandTable
from clustermgr.connection import RedisConnection
from clustermgr.errors import RedisError
from clustermgr.pool import ConnectionsPool
from clustermgr.sentinel import create_sentinel_pool
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.sentinel import LocalSentinelGroup
from clustermgr.testing.standalone import LocalStandalone

N = 200

# Every module of the data path that imports lookup_command by name.
_USERS = (
    "clustermgr.protocol", "clustermgr.connection", "clustermgr.pool", "clustermgr.batching",
    "clustermgr.pubsub",
)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Counts of name lookups of SET and GET: ``"table"`` (CommandTable.lookup),
    ``"special"`` (every other table)."""
    import importlib

    counts: collections.Counter[str] = collections.Counter()
    protocol = importlib.import_module("clustermgr.protocol")
    original = protocol.lookup_command

    def counting_lookup(table: dict[Any, bytes], command: Any) -> bytes | None:
        if _ours(command):
            counts["special"] += 1
        return original(table, command)

    for name in _USERS:
        module = importlib.import_module(name)
        if getattr(module, "lookup_command", None) is original:
            monkeypatch.setattr(module, "lookup_command", counting_lookup)
    table_lookup = CommandTable.lookup

    def counting_table(self: CommandTable, command: bytes | str) -> Any:
        if _ours(command):
            counts["table"] += 1
        return table_lookup(self, command)

    monkeypatch.setattr(CommandTable, "lookup", counting_table)
    yield counts


def _ours(command: Any) -> bool:
    return command in (b"SET", b"GET", "get", "GET")


def _keys(prefix: str) -> list[bytes]:
    return [f"{prefix}:{i}".encode() for i in range(N)]


async def test_cluster_execute_classifies_each_command_once(
    redis_cluster: LocalCluster, lookups: collections.Counter[str]
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1], maxsize=4)
    try:
        # Each command kind is judged plain once (then cached): warm both up.
        await pool.execute(b"SET", b"warm", b"up")
        await pool.execute("get", b"warm")
        lookups.clear()
        keys = _keys("once")
        replies = await asyncio.gather(*(pool.execute(b"SET", k, b"v") for k in keys))
        assert replies == [b"OK"] * N
        assert await asyncio.gather(*(pool.execute("get", k) for k in keys)) == [b"v"] * N
        assert lookups == {"table": 2 * N}
    finally:
        pool.close()
        await pool.wait_closed()


async def test_cluster_execute_batch_classifies_each_command_once(
    redis_cluster: LocalCluster, lookups: collections.Counter[str]
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1], maxsize=4)
    try:
        await pool.execute_batch([(b"SET", b"warm", b"up"), ("GET", b"warm")])
        lookups.clear()
        keys = _keys("batch-once")
        replies = await pool.execute_batch([(b"SET", k, b"v") for k in keys])
        assert replies == [b"OK"] * N
        assert await pool.execute_batch([("GET", k) for k in keys]) == [b"v"] * N
        assert lookups == {"table": 2 * N}
    finally:
        pool.close()
        await pool.wait_closed()


async def test_sentinel_execute_classifies_each_command_once(
    redis_sentinel: LocalSentinelGroup, lookups: collections.Counter[str]
) -> None:
    pool = await create_sentinel_pool(redis_sentinel.sentinel_addresses, redis_sentinel.service)
    try:
        await pool.execute(b"SET", b"warm", b"up")
        lookups.clear()
        keys = _keys("sentinel-once")
        replies = await asyncio.gather(*(pool.execute(b"SET", k, b"v") for k in keys))
        assert replies == [b"OK"] * N
        assert lookups == {"table": N}
    finally:
        pool.close()
        await pool.wait_closed()


async def test_standalone_execute_looks_each_command_up_once(
    redis_standalone: LocalStandalone, lookups: collections.Counter[str]
) -> None:
    pool = await create_pool(redis_standalone.address, maxsize=2)
    try:
        lookups.clear()
        keys = _keys("standalone-once")
        replies = await asyncio.gather(*(pool.execute(b"SET", k, b"v") for k in keys))
        assert replies == [b"OK"] * N
        assert lookups == {"special": N}
    finally:
        pool.close()
        await pool.wait_closed()


async def test_execute_plain_on_a_subscribed_connection_is_refused_like_execute(
    redis_standalone: LocalStandalone,
) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        await conn.execute_pubsub(b"SUBSCRIBE", b"plain-news")
        with pytest.raises(RedisError, match="subscribed"):
            conn.execute_plain(b"GET", (b"k",))
    finally:
        conn.close()
        await conn.wait_closed()


async def test_execute_plain_inside_multi_is_queued_for_exec(
    redis_standalone: LocalStandalone,
) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        assert await conn.execute(b"MULTI") == b"OK"
        queued = conn.execute_plain(b"SET", (b"plain-multi", b"1"))
        got = conn.execute_plain(b"GET", (b"plain-multi",), encoding="utf-8")
        assert await queued == b"QUEUED" and await got == "QUEUED"
        assert await conn.execute(b"EXEC") == [b"OK", "1"]
        assert not conn.in_transaction
    finally:
        conn.close()
        await conn.wait_closed()


async def test_overridden_execute_still_sees_every_command(
    redis_cluster: LocalCluster, redis_standalone: LocalStandalone
) -> None:
    """A subclass that overrides ``execute`` only is not bypassed by the plain entry points."""
    seen: collections.Counter[str] = collections.Counter()

    class CountingPool(ConnectionsPool):
        def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> Any:
            seen["pool"] += 1
            return super().execute(command, *args, **kwargs)

    class CountingConnection(RedisConnection):
        def execute(self, command: Any, *args: Any, **kwargs: Any) -> Any:
            seen["connection"] += 1
            return super().execute(command, *args, **kwargs)

    cluster = await create_cluster_pool(redis_cluster.startup_nodes[:1], pool_cls=CountingPool)
    pool = await create_pool(redis_standalone.address, connection_cls=CountingConnection)
    try:
        seen.clear()
        keys = _keys("override")
        await asyncio.gather(*(cluster.execute(b"SET", k, b"v") for k in keys))
        await asyncio.gather(*(pool.execute(b"SET", k, b"v") for k in keys))
        assert seen == {"pool": N, "connection": N}
    finally:
        cluster.close()
        pool.close()
        await cluster.wait_closed()
        await pool.wait_closed()
