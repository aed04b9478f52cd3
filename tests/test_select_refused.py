"""A refused SELECT leaves every pool type on its old db.

``ConnectionsPool.select`` is covered in ``test_handback.py``
(``test_failed_pool_select_leaves_the_pool_usable``). Here: a cluster pool
(only db 0 exists: ``select(n)`` is refused, SELECT on an acquired node
connection is refused by the server) and a sentinel pool (SELECT only on an
acquired connection). After each refusal the pool still serves db 0, on the
connection that saw the refusal and on the others; the servers' ``CLIENT INFO``
says which db a connection is on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from clustermgr.cluster import ClusterPool, create_cluster_pool
from clustermgr.errors import ReplyError, RouteError
from clustermgr.sentinel import SentinelPool, create_sentinel_pool
from clustermgr.testing import LocalCluster, LocalSentinelGroup


def _client_db(info: bytes) -> int:
    fields = dict(part.split(b"=", 1) for part in info.split() if b"=" in part)
    return int(fields[b"db"])


@pytest.fixture
async def cluster(redis_cluster: LocalCluster) -> AsyncIterator[ClusterPool]:
    pool = await create_cluster_pool(redis_cluster.startup_nodes[:1], minsize=1, maxsize=1)
    yield pool
    pool.close()
    await pool.wait_closed()


@pytest.fixture
async def sentinel_pool(redis_sentinel: LocalSentinelGroup) -> AsyncIterator[SentinelPool]:
    pool = await create_sentinel_pool(
        redis_sentinel.sentinel_addresses, redis_sentinel.service, minsize=1, maxsize=1,
        failover_timeout=5,
    )
    yield pool
    pool.close()
    await pool.wait_closed()


@pytest.mark.parametrize("db", [1, 15, -1])
async def test_cluster_select_of_another_db_is_refused(cluster: ClusterPool, db: int) -> None:
    with pytest.raises(RouteError, match="only database 0"):
        await cluster.select(db)
    assert cluster.db == 0
    assert await cluster.execute("SET", "sel:k", "v") == b"OK"
    assert await cluster.select(0) is True


async def test_cluster_node_refusing_select_keeps_the_connection_on_db_0(
    cluster: ClusterPool,
) -> None:
    args: Any = ("sel:k",)
    async with cluster.get("GET", args) as conn:
        with pytest.raises(ReplyError, match="SELECT is not allowed in cluster mode"):
            await conn.execute("SELECT", 1)
        assert conn.db == 0
    # maxsize=1: the same connection serves the next command, on db 0.
    assert _client_db(await cluster.execute("CLIENT", "INFO")) == 0
    assert cluster.db == 0
    assert await cluster.execute("SET", "sel:k", "v") == b"OK"


@pytest.mark.parametrize(("db", "refused"), [(100000, True), (3, False)])
async def test_sentinel_pool_stays_on_its_db_after_select_on_an_acquired_connection(
    sentinel_pool: SentinelPool, db: int, refused: bool
) -> None:
    async with sentinel_pool.get() as conn:
        if refused:
            with pytest.raises(ReplyError, match="out of range"):
                await conn.execute("SELECT", db)
            assert conn.db == 0
        else:
            assert await conn.execute("SELECT", db) == b"OK"
            assert conn.db == db
    assert sentinel_pool.db == 0
    # maxsize=1: the next holder gets that connection back on db 0, or a new one.
    assert _client_db(await sentinel_pool.execute("CLIENT", "INFO")) == 0
    async with sentinel_pool.get() as again:
        assert again.db == 0
        assert _client_db(await again.execute("CLIENT", "INFO")) == 0
