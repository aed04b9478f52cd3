"""SentinelPool pub/sub answers as a plain pool does, and a SUBSCRIBE follows a failover."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from clustermgr import create_connection, create_pool, create_sentinel_pool, errors
from clustermgr.testing import LocalSentinelGroup

pytestmark = pytest.mark.timeout(120)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("command", "suffix"), [("SUBSCRIBE", ""), ("PSUBSCRIBE", "*")])
async def test_sentinel_duplicate_names_confirmed_per_argument(
    redis_sentinel: LocalSentinelGroup, command: str, suffix: str
) -> None:
    pool = await create_sentinel_pool(redis_sentinel.sentinel_addresses, redis_sentinel.service)
    plain = await create_pool(redis_sentinel.master_address)
    name = _name("dup") + suffix
    try:
        expected = await asyncio.wait_for(plain.execute_pubsub(command, name, name), 5)
        got = await asyncio.wait_for(pool.execute_pubsub(command, name, name), 5)
        assert len(got) == len(expected) == 2, (got, expected)
    finally:
        pool.close()
        plain.close()
        await pool.wait_closed()
        await plain.wait_closed()


async def test_sentinel_subscribe_while_master_dead_follows_failover(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    """Issued after the master died, before the failover: resolves once the new master
    confirmed it (not PoolClosedError for the old master's pool)."""
    group = local_sentinel_factory()
    pool = await create_sentinel_pool(group.sentinel_addresses, group.service)
    try:
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", _name("a")), 5)
        old = pool.address
        group.kill(group.master)
        await asyncio.sleep(0.3)
        b = _name("b")
        replies = await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", b), 60)
        assert [reply[:2] for reply in replies] == [[b"subscribe", b.encode()]]
        assert pool.address not in (old, None)
        pub = await create_connection(pool.address)
        try:
            assert await pub.execute("PUBLISH", b, "x") == 1
        finally:
            pub.close()
            await pub.wait_closed()
        assert await asyncio.wait_for(pool.pubsub_channels[b].get(), 3) == b"x"
    finally:
        pool.close()
        await asyncio.wait_for(pool.wait_closed(), 5)


async def test_sentinel_unsubscribe_while_master_dead_resolves(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    """Issued after the master died: the channel ends and is not on the new master."""
    group = local_sentinel_factory()
    pool = await create_sentinel_pool(group.sentinel_addresses, group.service)
    try:
        a, b = _name("a"), _name("b")
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", a, b), 5)
        channel = pool.pubsub_channels[b]
        old = pool.address
        group.kill(group.master)
        await asyncio.sleep(0.3)
        replies = await asyncio.wait_for(pool.execute_pubsub("UNSUBSCRIBE", b), 60)
        assert [reply[:2] for reply in replies] == [[b"unsubscribe", b.encode()]]
        assert not channel.is_active  # ended at the UNSUBSCRIBE: a get() now raises
        with pytest.raises(errors.ChannelClosedError):
            await asyncio.wait_for(channel.get(), 1)
        for _ in range(300):  # the failover: at most 30 s
            if pool.address not in (old, None):
                break
            await asyncio.sleep(0.1)
        pub = await create_connection(pool.address)
        try:
            for _ in range(50):  # the move to the new master: at most 5 s
                reply = await pub.execute("PUBSUB", "NUMSUB", a, b)
                if reply[1] == 1:
                    break
                await asyncio.sleep(0.1)
            assert [reply[1], reply[3]] == [1, 0], reply
        finally:
            pub.close()
            await pub.wait_closed()
    finally:
        pool.close()
        await asyncio.wait_for(pool.wait_closed(), 5)
