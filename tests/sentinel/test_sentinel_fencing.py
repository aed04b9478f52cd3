"""Fencing acquired connections, and failovers that do not happen (abort, -odown)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from sentinel_helpers import WriteLoad, missing_keys, wait_for

from clustermgr import create_connection, create_sentinel, create_sentinel_pool
from clustermgr.errors import ConnectionClosedError, ConnectionForcedCloseError
from clustermgr.pubsub import Channel
from clustermgr.sentinel import parse_event
from clustermgr.testing import LocalSentinelGroup

pytestmark = [pytest.mark.fault, pytest.mark.timeout(90)]

logger = logging.getLogger("tests.sentinel")

Factory = Callable[..., LocalSentinelGroup]


async def test_fencing_closes_acquired_connections(local_sentinel_factory: Factory) -> None:
    group = local_sentinel_factory()
    old = group.master
    pool = await create_sentinel_pool(group.sentinel_addresses, group.service,
                                      failover_timeout=10.0)
    client = await create_sentinel(group.sentinel_addresses)
    idle = await pool.acquire()
    busy = await pool.acquire()
    try:
        assert await idle.execute("SET", "fence:before", "1") == b"OK"
        blocked = busy.execute("BLPOP", "fence:never", 0)  # in flight when fenced
        assert await client.failover(group.service)
        await wait_for(lambda: pool.switch_count >= 1, 15, "the pool to follow the failover")
        # The command in flight on the old master fails as "forced close, may have run".
        with pytest.raises(ConnectionForcedCloseError) as in_flight:
            await asyncio.wait_for(blocked, 5)
        assert in_flight.value.may_have_executed
        assert "may have been executed" in str(in_flight.value)
        # The next command on a fenced connection never leaves the client.
        with pytest.raises(ConnectionClosedError) as refused:
            await idle.execute("SET", "fence:late", "x")
        assert not refused.value.may_have_executed
        assert "not executed" in str(refused.value)
        pool.release(idle)
        pool.release(busy)
        # The demoted master never saw the write; the pool writes to the new one.
        assert await asyncio.to_thread(old.command, "EXISTS", "fence:late") == 0
        assert pool.address != old.address
        assert await pool.execute("SET", "fence:after", "1") == b"OK"
        async with pool.get() as conn:
            assert conn.address == pool.address
            assert (await conn.execute("ROLE"))[0] == b"master"
    finally:
        client.close()
        await client.wait_closed()
        pool.close()
        await pool.wait_closed()


async def test_odown_then_minus_odown_releases_to_the_same_master(
    redis_sentinel: LocalSentinelGroup,
) -> None:
    """+odown holds commands; -odown before any failover stage releases them."""
    pool = await create_sentinel_pool(redis_sentinel.sentinel_addresses,
                                      redis_sentinel.service, failover_timeout=10.0)
    try:
        host, port = pool.address
        source = redis_sentinel.sentinel_addresses[0]
        master = f"master {redis_sentinel.service} {host} {port}"
        pool._follower.on_event(parse_event("+odown", f"{master} #quorum 2/2", source))
        assert pool.holding
        held = pool.execute("SET", "odown:k", "held")
        assert isinstance(held, asyncio.Future)
        await asyncio.sleep(0.5)  # the sentinels still name the old master: keep holding
        assert not held.done() and pool.holding
        pool._follower.on_event(parse_event("-odown", master, source))
        assert await asyncio.wait_for(held, 5) == b"OK"
        assert not pool.holding
        assert pool.address == (host, port) and pool.switch_count == 0
        assert await pool.execute("GET", "odown:k") == b"held"
    finally:
        pool.close()
        await pool.wait_closed()


async def _wait_event(group: LocalSentinelGroup, prefix: str, timeout: float) -> str:
    """The first event whose channel starts with ``prefix``, from any sentinel."""
    conns = [await create_connection(a) for a in group.sentinel_addresses]
    channels = [Channel(f"{prefix}*".encode(), is_pattern=True) for _ in conns]
    try:
        for conn, channel in zip(conns, channels, strict=True):
            await conn.execute_pubsub("PSUBSCRIBE", channel)
        gets = [asyncio.ensure_future(c.get()) for c in channels]
        try:
            done, _ = await asyncio.wait(gets, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for get in gets:
                get.cancel()
            await asyncio.gather(*gets, return_exceptions=True)
        if not done:
            raise AssertionError(f"no {prefix}* event within {timeout}s")
        kind, _payload = next(iter(done)).result()
        return kind.decode() if isinstance(kind, bytes) else str(kind)
    finally:
        for conn in conns:
            conn.close()
            await conn.wait_closed()


async def test_aborted_failover_releases_hold_to_the_same_master(
    local_sentinel_factory: Factory,
) -> None:
    """Master paused past down-after, but no replica may be promoted (replica-priority 0):
    sentinels publish +odown, +try-failover, -failover-abort-no-good-slave. Writes are
    held meanwhile and continue on the same master once it is back; none is lost."""
    group = local_sentinel_factory(down_after_ms=500, config=["replica-priority 0"])
    master = group.master
    pool = await create_sentinel_pool(group.sentinel_addresses, group.service, maxsize=4,
                                      failover_timeout=10.0)
    load = WriteLoad(pool, "abort", tasks=20)
    try:
        load.start()
        await asyncio.sleep(0.3)
        abort = asyncio.ensure_future(_wait_event(group, "-failover-abort", 10))
        await asyncio.sleep(0.1)  # subscribed before the pause
        await asyncio.to_thread(group.pause, master)
        try:
            kind = await abort
            assert pool.holding, "the pool did not hold writes during the failover attempt"
        finally:
            await asyncio.to_thread(group.resume, master)
        resumed_at = asyncio.get_running_loop().time()
        acked = len(load.acked)
        await wait_for(lambda: not pool.holding, 10, "the hold to be released")
        released_after = asyncio.get_running_loop().time() - resumed_at
        await wait_for(lambda: len(load.acked) > acked + 100, 10, "writes to continue")
        await load.stop()
        assert pool.address == master.address and pool.switch_count == 0
        assert not load.errors, dict(load.errors)
        assert await missing_keys(pool, load.acked) == []
        logger.warning("%s: hold released %.0f ms after the master resumed; %d writes, "
                       "max latency %.0f ms", kind, released_after * 1000, len(load.acked),
                       load.max_latency * 1000)
    finally:
        await load.stop()
        pool.close()
        await pool.wait_closed()
