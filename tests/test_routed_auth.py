"""``auth(password, username=None)`` on the cluster and sentinel pools (what
``aioredis.Redis(pool).auth(...)`` calls): every node's connections switch
user, reconnections use the new credentials, a refusal is an AuthError."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clustermgr import create_connection, create_sentinel_pool, errors
from clustermgr.cluster import create_cluster_pool

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["cluster", "sentinel"])
async def routed(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, list[Any]]]:
    """A routed pool and the addresses of the servers it sends to."""
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        pool: Any = await create_cluster_pool(cluster.startup_nodes[:1], minsize=2)
        await pool.execute("PING")
        addresses = [node.address for node in cluster.masters]
    else:
        group = request.getfixturevalue("redis_sentinel")
        pool = await create_sentinel_pool(group.sentinel_addresses, group.service, minsize=2)
        await pool.execute("PING")
        addresses = [node.address for node in group.data_nodes]
    try:
        yield pool, addresses
    finally:
        pool.close()
        await pool.wait_closed()


async def _whoami_everywhere(pool: Any) -> set[bytes]:
    """ACL WHOAMI on every server the pool uses, several times (shared connections)."""
    pools = list(pool.node_pools.values()) if hasattr(pool, "node_pools") else [pool]
    replies = await asyncio.gather(*(p.execute("ACL", "WHOAMI") for p in pools for _ in range(4)))
    return set(replies)


async def test_auth_switches_every_connection_and_reconnections(
    routed: tuple[Any, list[Any]],
) -> None:
    pool, addresses = routed
    user, password = f"u{uuid.uuid4().hex[:8]}", "pw-routed-auth"
    admins = [await create_connection(address) for address in addresses]
    try:
        for admin in admins:  # ACLs are per server
            await admin.execute("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*",
                                "+@all")
        with pytest.raises(errors.AuthError):
            await pool.auth("wrong", user)
        assert await _whoami_everywhere(pool) == {b"default"}
        assert await pool.auth(password, user) is True
        assert await _whoami_everywhere(pool) == {user.encode()}
        for admin in admins:  # reconnections authenticate with the new credentials
            await admin.execute("CLIENT", "KILL", "USER", user)
        await asyncio.sleep(0.1)
        for _ in range(20):
            try:
                assert await _whoami_everywhere(pool) == {user.encode()}
                break
            except errors.RedisError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the pool did not reconnect")
    finally:
        pool.close()
        await pool.wait_closed()
        for admin in admins:
            await admin.execute("ACL", "DELUSER", user)
            admin.close()
            await admin.wait_closed()
