"""Creating a sentinel pool while the sentinels name no usable master yet:
it waits, bounded by failover_timeout (scripted sentinels, real redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fake_sentinel import FakeSentinel, MasterView

from clustermgr import create_sentinel_pool
from clustermgr.errors import MasterNotFoundError
from clustermgr.testing import LocalServer

pytestmark = pytest.mark.timeout(60)

SERVICE = "svc"


@pytest.fixture
def master() -> Iterator[LocalServer]:
    """A real redis-server the fake sentinels name."""
    with LocalServer(name="master") as server:
        yield server


async def test_cold_pool_waits_while_the_sentinels_link_is_disconnected(
    master: LocalServer,
) -> None:
    """Right after a failover the sentinel flags the new master ``disconnected``:
    creating a pool waits until it is seen up, then uses it."""
    async with FakeSentinel(SERVICE, MasterView(master.address, "master,disconnected")) as fake:
        loop = asyncio.get_running_loop()
        started = loop.time()
        creating = asyncio.ensure_future(create_sentinel_pool(
            [fake.address], SERVICE, failover_timeout=5.0, role_check_interval=None))
        await asyncio.sleep(0.5)
        assert not creating.done()
        fake.view.flags = "master"
        pool = await asyncio.wait_for(creating, 5.0)
        try:
            assert 0.4 < loop.time() - started < 5.0
            await pool.execute("SET", "k", "1")
            assert master.command("GET", "k") == "1"
        finally:
            pool.close()
            await pool.wait_closed()


async def test_cold_pool_to_a_master_that_stays_down_fails_typed_within_its_bound(
    master: LocalServer,
) -> None:
    async with FakeSentinel(SERVICE, MasterView(master.address, "master,s_down,o_down")) as fake:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(MasterNotFoundError):
            await create_sentinel_pool(
                [fake.address], SERVICE, failover_timeout=1.0, role_check_interval=None)
        assert loop.time() - started < 2.5


async def test_cold_pool_trusts_the_sentinels_after_a_stuck_failover(
    master: LocalServer,
) -> None:
    """One sentinel flags the master ``failover_in_progress`` and never ends it (no
    good replica); another names it up. The pool waits half of failover_timeout for
    the new master, then trusts the view and uses the master."""
    async with (
        FakeSentinel(SERVICE, MasterView(master.address, "master,failover_in_progress")) as a,
        FakeSentinel(SERVICE, MasterView(master.address)) as b,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        pool = await create_sentinel_pool(
            [a.address, b.address], SERVICE, failover_timeout=2.0, role_check_interval=None)
        try:
            assert 0.9 < loop.time() - started < 2.0
            await pool.execute("SET", "k", "2")
            assert master.command("GET", "k") == "2"
        finally:
            pool.close()
            await pool.wait_closed()


async def test_cold_replica_pool_waits_until_a_replica_is_listed(master: LocalServer) -> None:
    """role="replica": the sentinels list no healthy replica yet (one is being
    reconfigured after a failover); creating the pool waits until one is listed."""
    with LocalServer(name="replica", config=[f"replicaof {master.host} {master.port}"]) as rep:
        await asyncio.to_thread(
            lambda: master.command("WAIT", "1", "5000"))  # the replica's link is up
        async with FakeSentinel(SERVICE, MasterView(master.address)) as fake:
            loop = asyncio.get_running_loop()
            started = loop.time()
            creating = asyncio.ensure_future(create_sentinel_pool(
                [fake.address], SERVICE, role="replica", failover_timeout=5.0,
                role_check_interval=None))
            await asyncio.sleep(0.5)
            assert not creating.done()
            fake.replicas = [rep.address]
            pool = await asyncio.wait_for(creating, 5.0)
            try:
                assert 0.4 < loop.time() - started < 5.0
                assert pool.address == rep.address
            finally:
                pool.close()
                await pool.wait_closed()
