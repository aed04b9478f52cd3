"""A cluster ACL user allowed only the slot map command(s) and data commands.

Managed services hand out users without ``CLUSTER INFO``/``CLUSTER NODES``
(or ``COMMAND``); the pool must still start, route and follow MOVED with
``CLUSTER SHARDS`` or even only ``CLUSTER SLOTS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from clustermgr.cluster import create_cluster_pool, key_slot
from clustermgr.errors import NoPermissionError
from clustermgr.testing import LocalCluster

_USERS = {
    # name: the slot map commands it may run
    "shards-only": "+cluster|shards",
    "slots-only": "+cluster|slots",
}


@pytest.fixture(scope="module")
def limited() -> Iterator[LocalCluster]:
    with LocalCluster(masters=3, replicas_per_master=0) as cluster:
        for node in cluster.nodes:
            for name, allowed in _USERS.items():
                node.command(
                    "ACL", "SETUSER", name, "on", ">pw", "~*", "resetchannels", "&*",
                    "-@all", "+@read", "+@write", "+@connection", allowed,
                )
        yield cluster


@pytest.mark.parametrize("user", list(_USERS))
async def test_a_user_with_only_the_slot_map_command_uses_the_cluster(
    limited: LocalCluster, user: str
) -> None:
    node = limited.nodes[0]
    with pytest.raises(NoPermissionError):  # the premise: CLUSTER INFO is refused
        await _cluster_info_as(node.port, user)
    pool = await create_cluster_pool(
        [("127.0.0.1", node.port)], username=user, password="pw", retry_timeout=3
    )
    try:
        keys = [f"lp:{user}:{i}".encode() for i in range(40)]
        for key in keys:
            assert await asyncio.wait_for(pool.execute(b"SET", key, key), 10) == b"OK"
        assert await pool.execute(b"MGET", *keys) == keys
        owners = {pool.slot_owner(key_slot(k)) for k in keys}
        assert owners == {n.address for n in limited.nodes}
    finally:
        pool.close()
        await pool.wait_closed()


async def _cluster_info_as(port: int, user: str) -> None:
    from clustermgr.connection import create_connection

    conn = await create_connection(("127.0.0.1", port), username=user, password="pw")
    try:
        await conn.execute(b"CLUSTER", b"INFO")
    finally:
        conn.close()
        await conn.wait_closed()
