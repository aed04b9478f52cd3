"""Timing windows of a failover, forced with a scripted sentinel and real data nodes.

Each test stops the failover at the exact moment a real sentinel group passes
through only under load (see issue 13), then checks that no write reaches a
master the sentinels are replacing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator

import pytest
from fake_sentinel import FakeSentinel, MasterView
from sentinel_helpers import sets_on, wait_for

from clustermgr import create_sentinel_pool
from clustermgr.errors import RedisError
from clustermgr.sentinel import SentinelPool
from clustermgr.testing import LocalServer

pytestmark = pytest.mark.timeout(60)

SERVICE = "racy"
NAME = "cm-race-test"


@pytest.fixture
def nodes() -> Iterator[tuple[LocalServer, LocalServer]]:
    """A master and its replica (real redis-servers)."""
    with (
        LocalServer(name="old") as old,
        LocalServer(name="new", config=[f"replicaof {old.host} {old.port}"]) as new,
    ):
        yield old, new


@contextlib.asynccontextmanager
async def _pool(*sentinels: FakeSentinel) -> AsyncIterator[SentinelPool]:
    pool = await create_sentinel_pool(
        [s.address for s in sentinels], SERVICE, name=NAME, maxsize=2,
        failover_timeout=10.0, role_check_interval=None,
    )
    try:
        await wait_for(lambda: all(s.subscribers == 1 for s in sentinels), 5,
                       "the event subscriptions")
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


class Writer:
    """One task setting fresh keys through the pool until stopped."""

    def __init__(self, pool: SentinelPool) -> None:
        self.pool = pool
        self.acked: list[str] = []
        self.errors: list[str] = []
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        for n in itertools.count():
            key = f"race:{n}"
            try:
                await self.pool.execute("SET", key, key)
            except RedisError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
                continue
            self.acked.append(key)
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _slave(node: LocalServer, master: LocalServer) -> str:
    return (f"slave {node.host}:{node.port} {node.host} {node.port} "
            f"@ {SERVICE} {master.host} {master.port}")


async def _promote(sentinel: FakeSentinel, old: LocalServer, new: LocalServer) -> None:
    """A sentinel failover of ``old`` up to the promotion of ``new`` (no switch yet)."""
    await asyncio.to_thread(old.kill)
    sentinel.view.flags = "master,s_down,o_down,failover_in_progress"
    sentinel.publish_about_master("+sdown")
    sentinel.publish_about_master("+odown", " #quorum 2/2")
    sentinel.publish_about_master("+try-failover")
    sentinel.publish_about_master("+elected-leader")
    sentinel.publish("+selected-slave", _slave(new, old))
    sentinel.publish("+failover-state-send-slaveof-noone", _slave(new, old))
    await asyncio.to_thread(new.command, "REPLICAOF", "NO", "ONE")
    sentinel.publish("+promoted-slave", _slave(new, old))


async def test_restarted_old_master_named_by_a_stale_view_is_never_written(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """The window a loaded sentinel group shows between the promotion and +switch-master.

    The old master is SIGKILLed, the replica promoted and the pool released to
    it; then the old master is restarted (a master again, with its old data)
    before the sentinels switch, so they still name it, no longer down, under
    the config epoch it had. A rediscovery in that window (here: the event
    subscription blips and the sentinel names another master) must not send
    writes to it.
    """
    old, new = nodes
    async with FakeSentinel(SERVICE, MasterView(old.address)) as sentinel, _pool(sentinel) as pool:
        assert pool.address == old.address
        writer = Writer(pool)
        try:
            await wait_for(lambda: len(writer.acked) > 10, 5, "writes on the old master")
            await _promote(sentinel, old, new)
            await wait_for(lambda: pool.address == new.address and not pool.holding, 10,
                           "the pool to follow the promotion")
            await asyncio.to_thread(old.restart)
            sentinel.view.flags = "master"  # it answers again; not switched yet
            sentinel.publish_about_master("-sdown")
            sentinel.publish_about_master("-odown")
            sentinel.drop_subscribers()
            await wait_for(lambda: sentinel.subscribers == 1, 5, "the resubscription")
            await asyncio.sleep(1.0)
            assert await asyncio.to_thread(sets_on, old) == 0, (
                "writes reached the restarted old master")
            # The sentinels finish the failover; writes go to the new master.
            sentinel.view = MasterView(new.address, "master", 1)
            sentinel.publish("+switch-master",
                             f"{SERVICE} {old.host} {old.port} {new.host} {new.port}")
            acked = len(writer.acked)
            await wait_for(lambda: len(writer.acked) > acked + 10, 10,
                           "writes on the new master")
        finally:
            await writer.stop()
        assert pool.address == new.address
        assert await asyncio.to_thread(sets_on, old) == 0


async def test_server_pool_does_not_reconnect_to_a_restarted_master(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """The master dies while the pool is idle and comes back (a master, empty) at once,
    while the sentinels are replacing it and their events did not reach us. The next
    command must not open a connection to it on the pool's own: only after the
    sentinels name a master (here: the promoted replica) do writes resume."""
    old, new = nodes
    async with FakeSentinel(SERVICE, MasterView(old.address)) as sentinel, _pool(sentinel) as pool:
        assert await pool.execute("SET", "before", "1") == b"OK"
        await asyncio.to_thread(old.kill)
        await asyncio.sleep(0.2)  # the pool's connection saw the end of its socket
        sentinel.view.flags = "master,failover_in_progress"
        await asyncio.to_thread(old.restart)
        write = pool.execute("SET", "after", "1")
        await asyncio.sleep(1.0)
        assert await asyncio.to_thread(sets_on, old) == 0, (
            "the pool reconnected to the restarted old master on its own")
        assert not write.done()
        await asyncio.to_thread(new.command, "REPLICAOF", "NO", "ONE")
        sentinel.view = MasterView(new.address, "master", 1)
        assert await asyncio.wait_for(write, 5) == b"OK"
        assert pool.address == new.address
        assert await asyncio.to_thread(new.command, "GET", "after") == "1"
        assert await asyncio.to_thread(sets_on, old) == 0


async def test_no_release_to_a_replica_before_the_leader_saw_it_promoted(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """The leader sent REPLICAOF NO ONE, the replica answers ROLE master, but the
    leader never saw it promoted and aborts (-failover-abort-slave-timeout): the
    sentinels keep the old master and will turn the replica back. No write may go
    to the replica; after the abort writes continue on the old master."""
    old, new = nodes
    async with FakeSentinel(SERVICE, MasterView(old.address)) as sentinel, _pool(sentinel) as pool:
        writer = Writer(pool)
        try:
            await wait_for(lambda: len(writer.acked) > 10, 5, "writes on the master")
            await asyncio.to_thread(old.pause)
            try:
                sentinel.view.flags = "master,s_down,o_down,failover_in_progress"
                sentinel.publish_about_master("+sdown")
                sentinel.publish_about_master("+odown", " #quorum 2/2")
                sentinel.publish_about_master("+try-failover")
                sentinel.publish_about_master("+elected-leader")
                sentinel.publish("+selected-slave", _slave(new, old))
                sentinel.publish("+failover-state-send-slaveof-noone", _slave(new, old))
                await asyncio.to_thread(new.command, "REPLICAOF", "NO", "ONE")
                replicated = await asyncio.to_thread(sets_on, new)  # from the old master
                await asyncio.sleep(1.0)
                assert await asyncio.to_thread(sets_on, new) == replicated, (
                    "writes reached a replica the leader never saw promoted")
                sentinel.publish_about_master("-failover-abort-slave-timeout")
                sentinel.view.flags = "master"
            finally:
                await asyncio.to_thread(old.resume)
            acked = len(writer.acked)
            await wait_for(lambda: len(writer.acked) > acked + 10, 10,
                           "writes on the old master")
        finally:
            await writer.stop()
        assert pool.address == old.address
        assert await asyncio.to_thread(sets_on, new) == replicated


async def test_an_abort_by_a_sentinel_that_lost_the_election_does_not_end_the_hold(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """Two sentinels try to fail the dead master over; one wins. The loser publishes
    -failover-abort-not-elected while the leader goes on; the old master restarts and
    the loser names it again, up, under its old epoch. Writes keep waiting for the
    leader's promotion and then go to the new master, never to the old one."""
    old, new = nodes
    leader = FakeSentinel(SERVICE, MasterView(old.address))
    loser = FakeSentinel(SERVICE, MasterView(old.address))
    async with leader, loser, _pool(leader, loser) as pool:
        writer = Writer(pool)
        try:
            await wait_for(lambda: len(writer.acked) > 10, 5, "writes on the old master")
            await asyncio.to_thread(old.kill)
            for sentinel in (leader, loser):
                sentinel.view.flags = "master,s_down,o_down"
                sentinel.publish_about_master("+sdown")
                sentinel.publish_about_master("+odown", " #quorum 2/2")
                sentinel.publish_about_master("+try-failover")
            leader.view.flags += ",failover_in_progress"
            leader.publish_about_master("+elected-leader")
            await asyncio.sleep(0.2)
            loser.publish_about_master("-failover-abort-not-elected")
            await asyncio.to_thread(old.restart)
            loser.view.flags = "master"
            loser.publish_about_master("-sdown")
            loser.publish_about_master("-odown")
            await asyncio.sleep(1.0)
            assert await asyncio.to_thread(sets_on, old) == 0, (
                "writes reached the old master after a losing sentinel's abort")
            assert pool.holding
            leader.publish("+selected-slave", _slave(new, old))
            leader.publish("+failover-state-send-slaveof-noone", _slave(new, old))
            await asyncio.to_thread(new.command, "REPLICAOF", "NO", "ONE")
            leader.publish("+promoted-slave", _slave(new, old))
            await wait_for(lambda: pool.address == new.address and not pool.holding, 10,
                           "the pool to follow the promotion")
            acked = len(writer.acked)
            await wait_for(lambda: len(writer.acked) > acked + 10, 10,
                           "writes on the new master")
        finally:
            await writer.stop()
        assert await asyncio.to_thread(sets_on, old) == 0


async def test_restarted_master_is_refused_when_info_is_denied() -> None:
    """As above, but the pool's ACL user may not run INFO, so the server's run_id is
    unknown: once its connections are gone, the server pool opens no new one on its
    own; the Follower decides again through the sentinels."""
    acl = "user app on >secret ~* &* +@all -info"
    with (
        LocalServer(name="old", config=[acl]) as old,
        LocalServer(name="new", config=[acl, f"replicaof {old.host} {old.port}"]) as new,
    ):
        async with FakeSentinel(SERVICE, MasterView(old.address)) as sentinel:
            pool = await create_sentinel_pool(
                [sentinel.address], SERVICE, username="app", password="secret", maxsize=2,
                failover_timeout=10.0, role_check_interval=None)
            try:
                assert await pool.execute("SET", "before", "1") == b"OK"
                await asyncio.to_thread(old.kill)
                await asyncio.sleep(0.2)
                sentinel.view.flags = "master,failover_in_progress"
                await asyncio.to_thread(old.restart)
                write = pool.execute("SET", "after", "1")
                await asyncio.sleep(1.0)
                assert await asyncio.to_thread(sets_on, old) == 0, (
                    "the pool reconnected to the restarted old master on its own")
                assert not write.done()
                await asyncio.to_thread(new.command, "REPLICAOF", "NO", "ONE")
                sentinel.view = MasterView(new.address, "master", 1)
                assert await asyncio.wait_for(write, 5) == b"OK"
                assert pool.address == new.address
            finally:
                pool.close()
                await pool.wait_closed()
        assert await asyncio.to_thread(sets_on, old) == 0
