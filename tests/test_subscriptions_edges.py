"""Edges of the subscription state machine found by review: in-flight races, cancellation,
refusals, replies that look like pushes, user-closed channels.

Every test uses channel names of its own: the session's server is shared.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from clustermgr import Channel, create_connection, create_pool, errors


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _numsub(conn: Any, name: str) -> int:
    reply = await conn.execute("PUBSUB", "NUMSUB", name)
    return int(reply[1])


async def _ends(channel: Any, timeout: float) -> bool:
    """True if ``channel`` ends within ``timeout``: a waiting reader gets None, a later
    one ChannelClosedError (aioredis 1.x)."""
    try:
        message = await asyncio.wait_for(channel.get(), timeout)
    except errors.ChannelClosedError:
        return True
    except asyncio.TimeoutError:
        return False
    return message is None and not channel.is_active  # else a message: not ended


async def _wait_link(pool: Any, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.05)):
        if pool._pubsub.connection is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the pub/sub connection of {pool!r} did not come back")


@asynccontextmanager
async def _limited_pool(factory: Callable[..., Any]) -> AsyncIterator[Any]:
    """A pool of an ACL user allowed only the channels ``allowed*``, subscribed to one."""
    server = factory()
    admin = await create_connection(server.address)
    await admin.execute("ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all",
                        "resetchannels", "&allowed*")
    admin.close()
    await admin.wait_closed()
    pool = await create_pool(server.address, username="limited", password="pw")
    try:
        await pool.execute_pubsub("SUBSCRIBE", "allowed-1")  # the connection is up
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


# -- a SUBSCRIBE and an UNSUBSCRIBE of one name in flight together ----------------------


@pytest.mark.parametrize("how", ["close", "restart"])
async def test_unsubscribed_before_confirmed_ends(
    local_standalone_factory: Callable[..., Any], how: str
) -> None:
    server = local_standalone_factory()
    pool = await create_pool(server.address)
    try:
        await pool.execute_pubsub("SUBSCRIBE", _name("warm"))
        server.pause()  # nothing is confirmed from now on
        a = _name("a")
        sub = pool.execute_pubsub("SUBSCRIBE", a)
        channel = pool.pubsub_channels[a]
        unsub = pool.execute_pubsub("UNSUBSCRIBE", a)
        await asyncio.sleep(0.1)
        if how == "close":
            pool.close()
            await asyncio.wait_for(pool.wait_closed(), 5)
        else:
            server.kill()  # while stopped: no reply ever left the server
            server.resume()
            server.restart()
        await asyncio.wait_for(asyncio.gather(sub, unsub, return_exceptions=True), 10)
        if how == "restart":
            await _wait_link(pool)
            assert a.encode() not in pool.pubsub_channels
        assert await _ends(channel, 2), f"{channel!r} never ended"
        assert not channel.is_active
    finally:
        if server.server.is_paused:
            server.resume()
        pool.close()
        await pool.wait_closed()


async def test_refused_subscribe_then_unsubscribe_ends_channel(
    local_standalone_factory: Callable[..., Any],
) -> None:
    async with _limited_pool(local_standalone_factory) as pool:
        sub = pool.execute_pubsub("SUBSCRIBE", "forbidden-2")
        channel = pool.pubsub_channels["forbidden-2"]
        unsub = pool.execute_pubsub("UNSUBSCRIBE", "forbidden-2")
        results = await asyncio.wait_for(asyncio.gather(sub, unsub, return_exceptions=True), 5)
        assert isinstance(results[0], errors.NoPermissionError), results
        assert await _ends(channel, 1), f"{channel!r} never ended (refused, then unsubscribed)"


# -- cancelling a caller's await: "I stop waiting", never "undo" ------------------------


async def test_cancelled_subscribe_before_connection_still_happens(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address)
    pub = await create_connection(redis_standalone.address)
    try:
        a, b = _name("a"), _name("b")
        fut = pool.execute_pubsub("SUBSCRIBE", a)
        fut.cancel()  # the caller gives up before the pub/sub connection is up
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", b), 5)
        await asyncio.sleep(0.1)
        assert a.encode() in pool.pubsub_channels  # still desired ...
        assert pool._pubsub.state("channels", a) == "subscribed"
        assert await _numsub(pub, a) == 1  # ... and on the server
    finally:
        pool.close()
        pub.close()
        await pool.wait_closed()
        await pub.wait_closed()


async def test_cancelled_resubscribe_during_reconnect_keeps_subscription(
    local_standalone_factory: Callable[..., Any],
) -> None:
    server = local_standalone_factory()
    pool = await create_pool(server.address)
    try:
        a = _name("a")
        await pool.execute_pubsub("SUBSCRIBE", a)
        channel = pool.pubsub_channels[a]
        server.kill()
        await asyncio.sleep(0.3)
        with pytest.raises(asyncio.TimeoutError):  # subscribed again, given up
            await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", a), 0.05)
        server.restart()
        await _wait_link(pool)
        await asyncio.sleep(0.2)
        pub = await create_connection(server.address)
        try:
            numsub = await _numsub(pub, a)
            receivers = await pub.execute("PUBLISH", a, "x")
        finally:
            pub.close()
            await pub.wait_closed()
        assert pool.pubsub_channels[a] is channel and channel.is_active
        assert (numsub, receivers) == (1, 1), pool._pubsub.state("channels", a)
        assert await asyncio.wait_for(channel.get(), 2) == b"x"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_cancelled_refused_subscribe_is_dropped(
    local_standalone_factory: Callable[..., Any],
) -> None:
    async with _limited_pool(local_standalone_factory) as pool:
        with pytest.raises(errors.NoPermissionError):
            await pool.execute_pubsub("SUBSCRIBE", "forbidden-0")
        assert b"forbidden-0" not in pool.pubsub_channels
        fut = pool.execute_pubsub("SUBSCRIBE", "forbidden-1")
        channel = pool.pubsub_channels["forbidden-1"]
        await asyncio.sleep(0)
        fut.cancel()  # after it was sent
        await asyncio.sleep(0.3)
        assert b"forbidden-1" not in pool.pubsub_channels
        assert await _ends(channel, 1), "reader of a refused channel never ends"


# -- replies that look like pushes ---------------------------------------------------


@pytest.mark.parametrize("items", [("message", "x", "y"), ("subscribe", "x", "1")])
async def test_reply_before_subscribe_not_misread(
    redis_standalone: Any, items: tuple[str, ...]
) -> None:
    """A reply to a command sent before SUBSCRIBE is its reply, even if it looks like a push."""
    conn = await create_connection(redis_standalone.address)
    try:
        key = _name("list")
        await conn.execute("RPUSH", key, *items)
        lrange = conn.execute("LRANGE", key, 0, -1)
        sub = conn.execute_pubsub("SUBSCRIBE", _name("c"))
        assert await asyncio.wait_for(lrange, 2) == [i.encode() for i in items]
        await asyncio.wait_for(sub, 2)
        assert conn.in_pubsub == 1
    finally:
        conn.close()
        await conn.wait_closed()


async def test_subscribed_ping_answers_as_unsubscribed(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        unsubscribed = [await conn.execute("PING", *args) for args in ((), ("hi",), ("",))]
        await conn.execute_pubsub("SUBSCRIBE", _name("c"))
        subscribed = [await conn.execute("PING", *args) for args in ((), ("hi",), ("",))]
        assert subscribed == unsubscribed == [b"PONG", b"hi", b""]
    finally:
        conn.close()
        await conn.wait_closed()


async def test_reset_is_refused(redis_standalone: Any) -> None:
    """RESET would drop subscriptions (and db, auth, MULTI) behind the connection's back."""
    conn = await create_connection(redis_standalone.address)
    try:
        with pytest.raises(TypeError, match="RESET"):
            conn.execute("RESET")
        with pytest.raises(TypeError, match="RESET"):
            conn.execute("reset")
        with pytest.raises(TypeError):
            conn.execute_batch([("PING",), ("RESET",)])
        a = _name("c")
        await conn.execute_pubsub("SUBSCRIBE", a)
        # Subscribed, it is refused like every non-pub/sub command (aioredis does too).
        with pytest.raises(errors.RedisError, match="RESET"):
            conn.execute("RESET")
        assert conn.in_pubsub == 1 and conn.pubsub_channels[a].is_active
        assert await conn.execute("PING") == b"PONG"
    finally:
        conn.close()
        await conn.wait_closed()


# -- channels closed by their user; one channel per name in a call --------------------


async def test_user_closed_channel_stays_closed_and_is_replaced(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address)
    pub = await create_connection(redis_standalone.address)
    try:
        a = _name("c")
        await pool.execute_pubsub("SUBSCRIBE", a)
        old = pool.pubsub_channels[a]
        old.close()  # the user ends their reader
        for _ in range(3):
            await pub.execute("PUBLISH", a, "m")
        await asyncio.sleep(0.1)
        assert not old.is_active and old.qsize == 0, repr(old)
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", a), 5)  # by name again
        channel = pool.pubsub_channels[a]
        assert channel is not old and channel.is_active
        assert pool._pubsub.state("channels", a) == "subscribed"
        assert await pub.execute("PUBLISH", a, "n") == 1
        assert await asyncio.wait_for(channel.get(), 2) == b"n"
    finally:
        pool.close()
        pub.close()
        await pool.wait_closed()
        await pub.wait_closed()


@pytest.mark.parametrize("order", ["object-first", "name-first"])
async def test_object_and_name_in_one_call_are_one_channel(
    redis_standalone: Any, order: str
) -> None:
    """SUBSCRIBE(Channel('a'), 'a'): the caller's own channel object receives, once."""
    conn = await create_connection(redis_standalone.address)
    pool = await create_pool(redis_standalone.address)
    pub = await create_connection(redis_standalone.address)
    try:
        for target in (conn, pool):
            a = _name("mix")
            mine = Channel(a)
            args = (mine, a) if order == "object-first" else (a, mine)
            replies = await asyncio.wait_for(target.execute_pubsub("SUBSCRIBE", *args), 5)
            assert len(replies) == 2  # the server confirms once per argument
            assert target.pubsub_channels[a] is mine
            await pub.execute("PUBLISH", a, "m")
            assert await asyncio.wait_for(mine.get(), 2) == b"m"
    finally:
        for closing in (conn, pool, pub):
            closing.close()
            await closing.wait_closed()
