"""A sentinel pool's bounds: read_timeout reaches its server pools, ROLE checks end.

The data node is a real redis-server paused with SIGSTOP (resumed in
``finally``); the sentinel is scripted (:mod:`fake_sentinel`) and keeps naming
the paused master, so only the pool's own bounds can end a wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from fake_sentinel import FakeSentinel, MasterView
from sentinel_helpers import wait_for

from clustermgr import create_sentinel_pool
from clustermgr.bounds import READ_TIMEOUT
from clustermgr.errors import ConnectionClosedError
from clustermgr.testing import LocalServer

pytestmark = pytest.mark.timeout(60)

SERVICE = "bounded"


@pytest.fixture
def master() -> Iterator[LocalServer]:
    """A master of this test's own, resumed if the test left it paused."""
    with LocalServer(name="bounded") as node:
        try:
            yield node
        finally:
            if node.is_paused:
                node.resume()


async def test_read_timeout_reaches_the_server_pools(master: LocalServer) -> None:
    """A write to a paused master fails at its reply bound (it may have run)."""
    async with FakeSentinel(SERVICE, MasterView(master.address)) as sentinel:
        pool = await create_sentinel_pool(
            [sentinel.address], SERVICE, read_timeout=0.5, role_check_interval=None)
        try:
            assert await pool.execute("SET", "before", "1") == b"OK"
            await asyncio.to_thread(master.pause)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(ConnectionClosedError) as failure:
                await asyncio.wait_for(pool.execute("SET", "k", "v"), 10)
            assert loop.time() - started < 2.0
            assert failure.value.may_have_executed is True
            assert "read_timeout=0.5" in str(failure.value)
        finally:
            await asyncio.to_thread(master.resume)
            pool.close()
            await pool.wait_closed()


async def test_default_read_timeout_reaches_the_server_pools(master: LocalServer) -> None:
    """No read_timeout given: the default reply bound (10 s) ends the write."""
    async with FakeSentinel(SERVICE, MasterView(master.address)) as sentinel:
        pool = await create_sentinel_pool([sentinel.address], SERVICE, role_check_interval=None)
        try:
            await asyncio.to_thread(master.pause)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(ConnectionClosedError, match=r"read_timeout=10\.0s"):
                await asyncio.wait_for(pool.execute("SET", "k", "v"), READ_TIMEOUT + 5)
            assert READ_TIMEOUT - 0.5 < loop.time() - started < READ_TIMEOUT + 2
        finally:
            await asyncio.to_thread(master.resume)
            pool.close()
            await pool.wait_closed()


async def test_role_watchdog_query_is_bounded(
    master: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No reply bound at all (read_timeout=None): the watchdog's ROLE to a paused
    master still ends (at the connect bound) and the pool rediscovers."""
    caplog.set_level(logging.INFO, logger="clustermgr.sentinel")
    async with FakeSentinel(SERVICE, MasterView(master.address)) as sentinel:
        pool = await create_sentinel_pool(
            [sentinel.address], SERVICE, read_timeout=None, create_connection_timeout=0.5,
            role_check_interval=0.2)
        try:
            await asyncio.to_thread(master.pause)

            def reported() -> bool:
                return any("did not answer ROLE" in r.getMessage() for r in caplog.records)

            await wait_for(reported, 3.0, "the watchdog to report the paused master")
        finally:
            await asyncio.to_thread(master.resume)
            pool.close()
            await pool.wait_closed()
