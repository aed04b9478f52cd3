"""A sentinel-managed data user without ``ROLE`` (nor ``INFO``): the weaker check.

Such users (``+@all -@dangerous``, ``-@admin``, ``+@read +@write +@connection``)
are common on managed services. The pool then trusts the sentinels'
majority view for the server's role, detects a demoted master by its READONLY
replies, and says so once in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import pytest

from clustermgr import create_sentinel_pool
from clustermgr.connection import create_connection
from clustermgr.errors import NoPermissionError
from clustermgr.testing import FaultProxy, LocalSentinelGroup

pytestmark = pytest.mark.timeout(120)

_USERS = {
    "no-dangerous": ["+@all", "-@dangerous"],
    "no-admin": ["+@all", "-@admin"],
    "data": ["+@read", "+@write", "+@connection"],
}


def _create_users(group: LocalSentinelGroup) -> None:
    for node in group.data_nodes:
        for name, rules in _USERS.items():
            node.command("ACL", "SETUSER", name, "on", ">pw", "~*", "&*", "-@all", *rules)


@pytest.fixture(scope="module")
def group() -> Iterator[LocalSentinelGroup]:
    with LocalSentinelGroup(replicas=1) as found:
        _create_users(found)
        yield found


def _unverified_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ROLE is not allowed" in r.getMessage()]


@pytest.mark.parametrize("user", list(_USERS))
async def test_a_user_without_role_uses_the_master_and_is_told_once(
    group: LocalSentinelGroup, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(NoPermissionError):  # the premise
        await _role_as(group, user)
    caplog.set_level(logging.INFO, logger="clustermgr")
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, username=user, password="pw",
        minsize=3, role_check_interval=0.1,
    )
    try:
        assert pool.address == group.master.address
        await asyncio.gather(*(pool.execute("SET", f"lp:{user}:{i}", "v") for i in range(30)))
        assert await pool.execute("GET", f"lp:{user}:7") == b"v"
        await asyncio.sleep(0.5)  # a few watchdog rounds: no rediscovery for a denied ROLE
        assert pool.address == group.master.address
        assert len(_unverified_lines(caplog)) == 1, _unverified_lines(caplog)
        assert not [r for r in caplog.records if "rediscovering" in r.getMessage()]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_user_without_role_reads_from_replicas(group: LocalSentinelGroup) -> None:
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, role="replica", username="data",
        password="pw",
    )
    try:
        assert pool.replica_addresses == [group.replicas[0].address]
        assert await pool.execute("GET", "lp:none") is None
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_user_without_role_follows_a_failover(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    group = local_sentinel_factory(replicas=1)
    _create_users(group)
    new = group.replicas[0]
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, username="data", password="pw",
        failover_timeout=20,
    )
    try:
        assert await pool.execute("SET", "lp:before", "1") == b"OK"
        await asyncio.to_thread(group.failover)
        assert await asyncio.wait_for(pool.execute("SET", "lp:after", "2"), 20) == b"OK"
        assert pool.address == new.address
        assert new.command("GET", "lp:after") == "2"
    finally:
        pool.close()
        await pool.wait_closed()


async def _role_as(group: LocalSentinelGroup, user: str) -> None:
    conn = await create_connection(group.master.address, username=user, password="pw")
    try:
        await conn.execute(b"ROLE")
    finally:
        conn.close()
        await conn.wait_closed()


async def test_a_user_without_role_never_writes_to_the_demoted_master(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    # The pool's only sentinel is behind a proxy that the test stalls: the pool
    # hears no event of the failover and cannot ask, and its ROLE watchdog
    # cannot run (ROLE denied). What tells it is the old master itself: it
    # closes its clients when it becomes a replica (and a reconnect with
    # run_id unknown is refused), or answers READONLY.
    group = local_sentinel_factory(replicas=1, sentinels=1, quorum=1)
    _create_users(group)
    old, new = group.master, group.replicas[0]
    with FaultProxy(group.sentinel_addresses[0], name="sentinel") as sentinel:
        pool = await create_sentinel_pool(
            [sentinel.address], group.service, username="data", password="pw",
            failover_timeout=20, role_check_interval=0.1,
        )
        try:
            assert await pool.execute("SET", "ro:before", "1") == b"OK"
            sentinel.stall()
            await asyncio.to_thread(group.failover)
            for _ in range(200):  # bounded: the sentinel turns the old master into a replica
                if old.role() == "slave":
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the closed connections are seen (no write in flight)
            write = asyncio.ensure_future(pool.execute("SET", "ro:after", "2"))
            await asyncio.sleep(0.5)
            assert not write.done()  # held: it did not run on the replica
            sentinel.pass_through()
            assert await asyncio.wait_for(write, 20) == b"OK"
            assert pool.address == new.address
            assert new.command("GET", "ro:after") == "2"
        finally:
            pool.close()
            await pool.wait_closed()
