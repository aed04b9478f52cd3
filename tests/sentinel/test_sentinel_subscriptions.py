"""SentinelPool pub/sub on the shared subscription machinery: str keys, close mid-failover."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from clustermgr import create_connection, create_sentinel_pool, errors
from clustermgr.sentinel.monitor import SentinelMonitor
from clustermgr.testing import LocalSentinelGroup

pytestmark = pytest.mark.timeout(90)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_sentinel_str_keys_find_channels(redis_sentinel: LocalSentinelGroup) -> None:
    pool = await create_sentinel_pool(redis_sentinel.sentinel_addresses, redis_sentinel.service)
    name, pattern, shard = _name("c"), _name("p") + "*", _name("s")
    try:
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", name), 5)
        await asyncio.wait_for(pool.execute_pubsub("PSUBSCRIBE", pattern), 5)
        await asyncio.wait_for(pool.execute_pubsub("SSUBSCRIBE", shard), 5)
        assert pool.pubsub_channels[name] is pool.pubsub_channels[name.encode()]
        assert pool.pubsub_patterns[pattern] is pool.pubsub_patterns[pattern.encode()]
        assert pool.pubsub_shard_channels[shard] is pool.pubsub_shard_channels[shard.encode()]
        assert name in pool.pubsub_channels and "nope" not in pool.pubsub_channels
    finally:
        pool.close()
        await pool.wait_closed()


async def test_sentinel_close_during_failover(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    group = local_sentinel_factory()
    pool = await create_sentinel_pool(group.sentinel_addresses, group.service)
    try:
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", "a"), 5)
        await asyncio.wait_for(pool.execute_pubsub("PSUBSCRIBE", "p*"), 5)
        channel, pattern = pool.pubsub_channels[b"a"], pool.pubsub_patterns[b"p*"]
        readers = [asyncio.ensure_future(c.get()) for c in (channel, channel, pattern)]
        group.kill(group.master)
        await asyncio.sleep(0.3)
        pending = asyncio.ensure_future(pool.execute_pubsub("SUBSCRIBE", "b"))
        await asyncio.sleep(0.1)
        assert not pending.done()
    finally:
        pool.close()
        await asyncio.wait_for(pool.wait_closed(), 5)
    with pytest.raises(errors.PoolClosedError):
        await asyncio.wait_for(pending, 1)
    done, still = await asyncio.wait(readers, timeout=2)
    assert not still
    assert all(t.exception() is None and t.result() is None for t in done)  # aioredis: None
    assert not pool.in_pubsub


async def test_monitor_resubscribes_after_client_kill(redis_sentinel: LocalSentinelGroup) -> None:
    address = redis_sentinel.sentinel_addresses[0]
    states: list[bool] = []
    changed = asyncio.Event()

    def on_state(_: object, up: bool) -> None:
        states.append(up)
        changed.set()

    monitor = SentinelMonitor(connect=create_connection, on_event=lambda _: None, on_state=on_state)
    admin = await create_connection(address)
    try:
        assert monitor.watch(address) and not monitor.watch(address)
        while states != [True]:
            await asyncio.wait_for(changed.wait(), 5)
            changed.clear()
        assert monitor.connected == [address]
        assert await admin.execute("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        while states[-1:] != [True] or len(states) < 3:
            await asyncio.wait_for(changed.wait(), 5)
            changed.clear()
        assert states == [True, False, True] and monitor.connected == [address]
    finally:
        monitor.close()
        await asyncio.wait_for(monitor.wait_closed(), 2)
        admin.close()
        await admin.wait_closed()
    assert monitor.connected == []
