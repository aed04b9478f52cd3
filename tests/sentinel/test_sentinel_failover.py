"""Failover under load against a real sentinel group (each test owns its group)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from sentinel_helpers import WriteLoad, missing_keys, wait_for

from clustermgr import create_connection, create_sentinel, create_sentinel_pool
from clustermgr.pubsub import Channel
from clustermgr.testing import LocalSentinelGroup

pytestmark = [pytest.mark.fault, pytest.mark.timeout(90)]

logger = logging.getLogger("tests.sentinel")

Factory = Callable[..., LocalSentinelGroup]


class SwitchListener:
    """Records when any sentinel publishes +switch-master (test-side clock)."""

    def __init__(self) -> None:
        self.switched_at: float | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, group: LocalSentinelGroup) -> None:
        for address in group.sentinel_addresses:
            conn = await create_connection(address)
            channel = Channel(b"+switch-master")
            await conn.execute_pubsub(b"SUBSCRIBE", channel)
            self._tasks.append(asyncio.ensure_future(self._listen(conn, channel)))

    async def _listen(self, conn: object, channel: Channel) -> None:
        try:
            await channel.get()
            if self.switched_at is None:
                self.switched_at = asyncio.get_running_loop().time()
        finally:
            conn.close()  # type: ignore[attr-defined]
            await conn.wait_closed()  # type: ignore[attr-defined]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_sentinel_failover_loses_no_write(local_sentinel_factory: Factory) -> None:
    group = local_sentinel_factory()
    old_master = group.master_address
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, maxsize=4, failover_timeout=10.0
    )
    client = await create_sentinel(group.sentinel_addresses)
    listener = SwitchListener()
    await listener.start(group)
    load = WriteLoad(pool, "failover", tasks=50)
    try:
        load.start()
        await asyncio.sleep(0.5)
        before = len(load.acked)
        assert before > 0
        failover_at = asyncio.get_running_loop().time()
        assert await client.failover(group.service)
        await wait_for(lambda: pool.switch_count >= 1 and listener.switched_at is not None,
                       15, "the pool to follow the failover")
        await asyncio.sleep(1.0)
        await load.stop()
        assert pool.address != old_master
        switched_at = listener.switched_at
        assert switched_at is not None and pool.last_switch_at is not None
        first = load.first_ack_after(pool.last_switch_at)
        assert first is not None
        logger.warning(
            "SENTINEL FAILOVER: %d writes acked (%d before), errors=%s; commands held %.0f ms; "
            "pool switched %.0f ms after FAILOVER, %+.0f ms relative to +switch-master; "
            "first write on the new master %+.0f ms relative to +switch-master; "
            "max write latency %.0f ms",
            len(load.acked), before, dict(load.errors), (pool.last_hold_duration or 0) * 1000,
            (pool.last_switch_at - failover_at) * 1000,
            (pool.last_switch_at - switched_at) * 1000, (first - switched_at) * 1000,
            load.max_latency * 1000,
        )
        missing = await missing_keys(pool, load.acked)
        assert missing == [], f"{len(missing)} acknowledged writes lost"
        assert not any("may_have_executed=True" in e for e in load.errors)
    finally:
        await load.stop()
        await listener.stop()
        client.close()
        await client.wait_closed()
        pool.close()
        await pool.wait_closed()


class PromotionListener:
    """Records every ``+promoted-slave`` any sentinel publishes (promoted addresses)."""

    def __init__(self) -> None:
        self.promoted: list[tuple[str, int]] = []
        self._conns: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, group: LocalSentinelGroup) -> None:
        for address in group.sentinel_addresses:
            conn = await create_connection(address)
            channel = Channel(b"+promoted-slave")
            await conn.execute_pubsub(b"SUBSCRIBE", channel)
            self._conns.append(conn)
            self._tasks.append(asyncio.ensure_future(self._listen(channel)))

    async def _listen(self, channel: Channel) -> None:
        while True:
            payload = (await channel.get()).decode().split()
            self.promoted.append((payload[2], int(payload[3])))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self._conns:
            conn.close()
            await conn.wait_closed()


async def test_sigkill_master_old_master_never_written(local_sentinel_factory: Factory) -> None:
    """After a SIGKILL failover, the restarted old master (a master again, with its
    old data, until the sentinels convert it) gets none of our writes, unless the
    sentinels promote it again in a later failover (a loaded host can make them
    judge the new master down): only then may the pool follow it."""
    group = local_sentinel_factory(down_after_ms=1000)
    old = group.master
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, maxsize=4, failover_timeout=20.0,
        name="cm-sentinel-test",
    )
    load = WriteLoad(pool, "sigkill", tasks=20)
    promotions = PromotionListener()
    await promotions.start(group)
    try:
        load.start()
        await asyncio.sleep(0.3)
        await asyncio.to_thread(group.kill, old)
        killed_at = asyncio.get_running_loop().time()
        await wait_for(lambda: pool.switch_count >= 1, 20, "the pool to follow the promotion")
        assert pool.address != old.address
        switched_after = (pool.last_switch_at or 0) - killed_at
        acked_at_switch = len(load.acked)
        await asyncio.to_thread(group.restart, old)
        # The old master comes back believing it is a master; for a while it
        # accepts writes. None of ours may reach it.
        named: list[str] = []
        for _ in range(30):
            await asyncio.sleep(0.1)
            clients = await asyncio.to_thread(old.command, "CLIENT", "LIST")
            text = clients.decode() if isinstance(clients, bytes) else str(clients)
            ours = [line for line in text.splitlines() if "name=cm-sentinel-test" in line]
            if ours and old.address not in promotions.promoted:
                await asyncio.sleep(0.5)  # the event reaches the pool and us at once
            if old.address not in promotions.promoted:
                named += ours
        await load.stop()
        assert len(load.acked) > acked_at_switch, "writes did not continue on the new master"
        assert named == [], f"the pool connected to the restarted old master: {named}"
        if old.address in promotions.promoted:
            logger.warning("SIGKILL: the sentinels promoted the restarted old master again; "
                           "the pool followed them (switches: %d)", pool.switch_count)
        logger.warning(
            "SIGKILL: pool switched %.0f ms after the kill; %d writes acked, errors=%s",
            switched_after * 1000, len(load.acked), dict(load.errors),
        )
        # Writes acknowledged by the killed master after its last replication
        # may be lost (asynchronous replication); everything acked by the new
        # master must be there.
        last_switch = pool.last_switch_at or 0
        since_switch = [k for k, t in zip(load.acked, load.ack_times, strict=True)
                        if t >= last_switch]
        missing = await missing_keys(pool, since_switch)
        assert missing == []
    finally:
        await load.stop()
        await promotions.stop()
        pool.close()
        await pool.wait_closed()


async def test_discovery_survives_sentinel_loss(local_sentinel_factory: Factory) -> None:
    group = local_sentinel_factory()
    s0, s1, _s2 = group.sentinels
    await asyncio.to_thread(group.kill, s0)
    pool = await create_sentinel_pool(group.sentinel_addresses, group.service)
    try:
        assert await pool.execute("SET", "k", "v") == b"OK"
        await asyncio.to_thread(group.restart, s0)
        await asyncio.to_thread(group.kill, s1)
        second = await create_sentinel_pool(group.sentinel_addresses, group.service)
        try:
            assert second.address == group.master_address
            assert await second.execute("GET", "k") == b"v"
        finally:
            second.close()
            await second.wait_closed()
        # The first pool rediscovers through the sentinels still alive.
        pool._hold()
        assert await pool.execute("GET", "k") == b"v"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_subscriber_keeps_its_channel_across_failover(
    local_sentinel_factory: Factory,
) -> None:
    group = local_sentinel_factory()
    pool = await create_sentinel_pool(group.sentinel_addresses, group.service)
    client = await create_sentinel(group.sentinel_addresses)
    try:
        await pool.execute_pubsub("SUBSCRIBE", "news")
        channel = pool.pubsub_channels[b"news"]
        assert await pool.execute("PUBLISH", "news", "before") == 1
        assert await asyncio.wait_for(channel.get(), 2) == b"before"
        assert await client.failover(group.service)
        await wait_for(lambda: pool.switch_count >= 1, 15, "the pool to follow the failover")
        received = None
        for attempt in range(100):
            await pool.execute("PUBLISH", "news", f"after-{attempt}")
            try:
                received = await asyncio.wait_for(channel.get(), 0.1)
                break
            except asyncio.TimeoutError:
                continue
        assert received is not None and received.startswith(b"after-")
        assert pool.pubsub_channels[b"news"] is channel
        assert channel.is_active
    finally:
        client.close()
        await client.wait_closed()
        pool.close()
        await pool.wait_closed()
