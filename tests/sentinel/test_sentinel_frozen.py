"""A frozen (SIGSTOPped) data node never holds the pool, nor gets a write after it is replaced.

The data nodes are real redis-servers, paused at the exact moment; the
sentinel is scripted (:mod:`fake_sentinel`), so the failover news arrives
while the pool's ``ROLE`` check on the frozen server is in flight. No pool
here sets a client name, password or db: the connect handshake sends nothing,
so only the ROLE verification talks to the server (the case a connect
timeout alone does not bound).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from fake_sentinel import FakeSentinel, MasterView
from sentinel_helpers import sets_on, wait_for

from clustermgr import create_sentinel_pool
from clustermgr.errors import MasterNotFoundError, RedisError, TimeoutError
from clustermgr.sentinel import SentinelPool
from clustermgr.sentinel.servers import ServerPool
from clustermgr.testing import LocalServer

pytestmark = pytest.mark.timeout(60)

SERVICE = "frozen"


@pytest.fixture
def nodes() -> Iterator[tuple[LocalServer, LocalServer]]:
    """A master and its replica (real redis-servers), resumed if a test left one paused."""
    with (
        LocalServer(name="old") as old,
        LocalServer(name="new", config=[f"replicaof {old.host} {old.port}"]) as new,
    ):
        try:
            yield old, new
        finally:
            for node in (old, new):
                if node.is_paused:
                    node.resume()


def _slave(node: LocalServer, master: LocalServer) -> str:
    return (f"slave {node.host}:{node.port} {node.host} {node.port} "
            f"@ {SERVICE} {master.host} {master.port}")


async def _fail_over(sentinel: FakeSentinel, old: LocalServer, new: LocalServer) -> None:
    """A whole sentinel failover of ``old`` to ``new``, events and views, at once."""
    sentinel.view.flags = "master,s_down,o_down,failover_in_progress"
    sentinel.publish_about_master("+sdown")
    sentinel.publish_about_master("+odown", " #quorum 2/2")
    sentinel.publish_about_master("+try-failover")
    sentinel.publish_about_master("+elected-leader")
    sentinel.publish("+selected-slave", _slave(new, old))
    sentinel.publish("+failover-state-send-slaveof-noone", _slave(new, old))
    await asyncio.to_thread(new.command, "REPLICAOF", "NO", "ONE")
    sentinel.publish("+promoted-slave", _slave(new, old))
    sentinel.view = MasterView(new.address, "master", 1)
    sentinel.publish("+switch-master", f"{SERVICE} {old.host} {old.port} {new.host} {new.port}")


async def _writes(pool: SentinelPool, count: int) -> None:
    for n in range(count):
        assert await pool.execute("SET", f"after:{n}", "1") == b"OK"


@contextlib.asynccontextmanager
async def _closing(pool: SentinelPool) -> AsyncIterator[SentinelPool]:
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


async def test_verifying_a_connection_to_a_frozen_server_is_bounded(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """The ROLE check a server pool runs on each new connection counts against the
    connect timeout: a frozen server gives a TimeoutError (nothing sent), the
    connection is closed."""
    old, _new = nodes
    pool = ServerPool(old.address, role="master", minsize=0, create_connection_timeout=0.5)
    await asyncio.to_thread(old.pause)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError, match=r"timed out after 0\.5s") as failure:
            await asyncio.wait_for(pool.acquire(), 5.0)
        assert loop.time() - started < 1.5
        assert failure.value.may_have_executed is False
        assert pool.size == 0
    finally:
        await asyncio.to_thread(old.resume)
        pool.close()
        await pool.wait_closed()


async def test_cold_pool_to_a_frozen_master_gives_up_within_its_bounds(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """The sentinels name a master that is frozen: creating the pool ends (an error)
    within the connect bound, instead of waiting for the server to resume."""
    old, _new = nodes
    async with FakeSentinel(SERVICE, MasterView(old.address)) as sentinel:
        await asyncio.to_thread(old.pause)
        creating = asyncio.ensure_future(create_sentinel_pool(
            [sentinel.address], SERVICE, failover_timeout=3.0, role_check_interval=None,
            create_connection_timeout=1.0))
        done, _ = await asyncio.wait([creating], timeout=6.0)
        await asyncio.to_thread(old.resume)
        if not done:
            with contextlib.suppress(BaseException):
                async with _closing(await creating):
                    pass
            raise AssertionError("create_sentinel_pool still waiting on the frozen master")
        with pytest.raises(MasterNotFoundError, match="timed out"):
            creating.result()


async def test_cold_pool_never_installs_a_master_replaced_while_it_was_verified(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """The pool is being created while the master is frozen; the sentinels fail it
    over during the pool's ROLE check, and the old master resumes (still answering
    ROLE master) before the check's bound. The pool must use the new master."""
    old, new = nodes
    async with FakeSentinel(SERVICE, MasterView(old.address)) as sentinel:
        await asyncio.to_thread(old.pause)
        creating = asyncio.ensure_future(create_sentinel_pool(
            [sentinel.address], SERVICE, failover_timeout=5.0, role_check_interval=None))
        try:
            await wait_for(lambda: sentinel.subscribers == 1, 5, "the event subscription")
            await _fail_over(sentinel, old, new)
            await asyncio.sleep(0.5)
        finally:
            await asyncio.to_thread(old.resume)
        async with _closing(await asyncio.wait_for(creating, 10)) as pool:
            await _writes(pool, 20)
            assert pool.address == new.address
        assert await asyncio.to_thread(sets_on, old) == 0


async def test_rediscovery_result_from_before_a_failover_is_not_installed(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """The old master restarted (the pool refuses the new process and rediscovers);
    it freezes while the rediscovery's new server pool verifies it, the sentinels
    fail it over, and it resumes before the bound. The rediscovery started before
    the failover: its result must not be installed; writes go to the new master."""
    old, new = nodes
    async with FakeSentinel(SERVICE, MasterView(old.address)) as sentinel:
        pool = await create_sentinel_pool(
            [sentinel.address], SERVICE, failover_timeout=10.0, role_check_interval=None,
            maxsize=2)
        async with _closing(pool):
            await wait_for(lambda: sentinel.subscribers == 1, 5, "the event subscription")
            assert await pool.execute("SET", "before", "1") == b"OK"
            sentinel.view.flags = "master,failover_in_progress"  # no candidate for now
            await asyncio.to_thread(old.kill)
            await asyncio.to_thread(old.restart)
            write = asyncio.ensure_future(pool.execute("SET", "after", "1"))
            await asyncio.sleep(1.0)  # the pool saw the new run_id and rediscovers
            assert not write.done()
            await asyncio.to_thread(old.pause)
            try:
                sentinel.view.flags = "master"  # named again: a new pool is opened to it
                await asyncio.sleep(0.5)
                await _fail_over(sentinel, old, new)
                await asyncio.sleep(0.3)
            finally:
                await asyncio.to_thread(old.resume)
            assert await asyncio.wait_for(write, 10) == b"OK"
            await _writes(pool, 20)
            assert pool.address == new.address
        assert await asyncio.to_thread(sets_on, old) == 0


async def test_commands_go_to_the_new_master_while_the_old_one_stays_frozen(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """The pool's connections to the master drop and the master freezes: the
    rediscovery's ROLE check on it must not keep the promoted replica waiting,
    not even for the connect timeout (fencing the old master ends the check)."""
    old, new = nodes
    async with FakeSentinel(SERVICE, MasterView(old.address)) as sentinel:
        pool = await create_sentinel_pool(
            [sentinel.address], SERVICE, failover_timeout=10.0, role_check_interval=None,
            create_connection_timeout=5.0)
        async with _closing(pool):
            await wait_for(lambda: sentinel.subscribers == 1, 5, "the event subscription")
            assert await pool.execute("SET", "before", "1") == b"OK"
            await asyncio.to_thread(old.command, "CLIENT", "PAUSE", "5000", "WRITE")
            in_flight = asyncio.ensure_future(pool.execute("SET", "lost", "1"))
            await asyncio.sleep(0.2)
            await asyncio.to_thread(old.command, "CLIENT", "KILL", "TYPE", "normal")
            await asyncio.to_thread(old.pause)
            with pytest.raises(RedisError):  # its failure starts the rediscovery
                await asyncio.wait_for(in_flight, 1.0)
            await asyncio.sleep(0.5)  # the rediscovery is verifying the frozen master
            await _fail_over(sentinel, old, new)
            await asyncio.wait_for(_writes(pool, 20), 2.0)
            assert pool.address == new.address
            assert old.is_paused


async def test_replica_pool_starts_with_the_replicas_that_answer() -> None:
    """One of two replicas is frozen: the replica pool starts with the other."""
    with (
        LocalServer(name="m") as master,
        LocalServer(name="r1", config=[f"replicaof {master.host} {master.port}"]) as good,
        LocalServer(name="r2", config=[f"replicaof {master.host} {master.port}"]) as frozen,
    ):
        for replica in (good, frozen):
            await wait_for(lambda r=replica: r.info("replication").get(
                "master_link_status") == "up", 10, "the replica link")
        async with FakeSentinel(SERVICE, MasterView(master.address)) as sentinel:
            sentinel.replicas = [good.address, frozen.address]
            await asyncio.to_thread(frozen.pause)
            try:
                pool = await asyncio.wait_for(create_sentinel_pool(
                    [sentinel.address], SERVICE, role="replica", role_check_interval=None,
                    create_connection_timeout=1.0), 5.0)
                async with _closing(pool):
                    for _ in range(10):
                        assert await pool.execute("PING") == b"PONG"
                    assert pool.address == good.address
            finally:
                await asyncio.to_thread(frozen.resume)


async def test_a_master_the_sentinels_convert_to_a_replica_gets_no_more_writes(
    nodes: tuple[LocalServer, LocalServer],
) -> None:
    """The pool missed the failover (it was frozen, or the news was lost) and only
    hears the sentinels turn its master into a replica of the new one
    (+convert-to-slave): it stops writing there at once and follows the new master."""
    old, new = nodes
    async with FakeSentinel(SERVICE, MasterView(old.address)) as sentinel:
        pool = await create_sentinel_pool(
            [sentinel.address], SERVICE, failover_timeout=10.0, role_check_interval=None)
        async with _closing(pool):
            await wait_for(lambda: sentinel.subscribers == 1, 5, "the event subscription")
            await _writes(pool, 5)
            await asyncio.to_thread(new.command, "REPLICAOF", "NO", "ONE")
            sentinel.view = MasterView(new.address, "master", 1)
            sentinel.publish("+convert-to-slave", _slave(old, new))
            await asyncio.sleep(0.05)
            on_old = await asyncio.to_thread(sets_on, old)
            await asyncio.wait_for(_writes(pool, 20), 5.0)
            assert pool.address == new.address
        assert await asyncio.to_thread(sets_on, old) == on_old
