"""Channels, receivers, and subscriptions that survive reconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clustermgr import Channel, Receiver, create_connection, create_pool, errors


async def test_channel_get_iter_close() -> None:
    channel = Channel("news")
    assert channel.name == b"news" and not channel.is_pattern and channel.is_active
    channel.put_nowait(b'{"a": 1}')
    channel.put_nowait(b"two")
    assert await channel.get_json() == {"a": 1}
    channel.close()
    assert channel.is_active  # one unread message left
    assert [m async for m in channel.iter(encoding="utf-8")] == ["two"]
    assert not channel.is_active
    assert await channel.wait_message() is False
    with pytest.raises(errors.ChannelClosedError):
        await channel.get()


async def test_pattern_channel_yields_pairs() -> None:
    channel = Channel(b"n*", is_pattern=True)
    channel.put_nowait((b"news", b"x"))
    assert await channel.get(encoding="utf-8") == (b"news", "x")


async def test_waiting_reader_wakes_on_put_and_close() -> None:
    channel = Channel("c")
    reader = asyncio.ensure_future(channel.get())
    await asyncio.sleep(0)
    channel.put_nowait(b"m")
    assert await reader == b"m"
    reader = asyncio.ensure_future(channel.get())
    await asyncio.sleep(0)
    channel.close(RuntimeError("gone"))
    assert await reader is None  # aioredis 1.x: a waiting reader gets None at the end
    assert not channel.is_active
    with pytest.raises(errors.ChannelClosedError) as info:  # a get() after the end raises
        await channel.get()
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_a_decoded_none_is_told_apart_by_is_active() -> None:
    channel = Channel("c")
    reader = asyncio.ensure_future(channel.get(decoder=lambda _: None))
    await asyncio.sleep(0)
    channel.put_nowait(b"null")
    assert await reader is None and channel.is_active  # a message, not the end


async def test_waiting_iterators_and_wait_message_end_on_close() -> None:
    channel = Channel("c")
    channel.put_nowait(b"m")
    iterators = [asyncio.ensure_future(_collect(channel)) for _ in range(2)]
    waiter = asyncio.ensure_future(channel.wait_message())
    await asyncio.sleep(0)
    channel.close()
    got = await asyncio.wait_for(asyncio.gather(*iterators), 1)
    assert sorted(got) == [[], [b"m"]]
    assert await asyncio.wait_for(waiter, 1) is False  # the message was read: ended
    assert await channel.wait_message() is False


async def _collect(channel: Channel) -> list[Any]:
    return [message async for message in channel.iter()]


async def test_receiver_waiting_reader_gets_none_when_stopped() -> None:
    receiver = Receiver()
    readers = [asyncio.ensure_future(receiver.get()) for _ in range(2)]
    await asyncio.sleep(0)
    receiver.stop()
    assert await asyncio.wait_for(asyncio.gather(*readers), 1) == [None, None]
    with pytest.raises(errors.ChannelClosedError):
        await receiver.get()
    assert await receiver.wait_message() is False


async def test_receiver_stops_when_its_last_sender_closes_unless_on_close_is_given() -> None:
    receiver = Receiver()
    first, second = receiver.channel("a"), receiver.pattern("b*")
    second.put_nowait((b"bx", b"m"))
    first.close()
    assert receiver.is_active and set(receiver.patterns) == {b"b*"}
    second.close(RuntimeError("gone"))
    assert [item async for item in receiver.iter()] == [(second, (b"bx", b"m"))]
    assert not receiver.is_active and await receiver.wait_message() is False

    closed: list[tuple[Any, Any]] = []
    kept = Receiver(on_close=lambda sender, exc=None: closed.append((sender.name, exc)))
    error = RuntimeError("lost")
    kept.channel("c").close(error)
    assert closed == [(b"c", error)]
    kept.channel("c").put_nowait(b"still open")  # a fresh sender; not stopped
    assert await kept.get() == (kept.channel("c"), b"still open")


async def test_connection_subscribe_publish_unsubscribe(redis_standalone: Any) -> None:
    sub = await create_connection(redis_standalone.address)
    pub = await create_connection(redis_standalone.address)
    try:
        await sub.execute_pubsub("SUBSCRIBE", "c1", "c2")
        await sub.execute_pubsub("PSUBSCRIBE", "p.*")
        assert sub.in_pubsub == 3
        assert set(sub.pubsub_channels) == {b"c1", b"c2"}
        assert await pub.execute("PUBLISH", "c1", "hello") == 1
        assert await pub.execute("PUBLISH", "p.x", "pat") == 1
        assert await sub.pubsub_channels[b"c1"].get() == b"hello"
        assert await sub.pubsub_patterns[b"p.*"].get() == (b"p.x", b"pat")
        assert await sub.execute("PING") == b"PONG"  # as aioredis 1.x answers a subscribed PING
        c2 = sub.pubsub_channels[b"c2"]
        await sub.execute_pubsub("UNSUBSCRIBE")
        assert sub.in_pubsub == 1 and not c2.is_active
        await sub.execute_pubsub("PUNSUBSCRIBE", "p.*")
        assert sub.in_pubsub == 0
        assert await sub.execute("SET", "after", "pubsub") == b"OK"
    finally:
        for conn in (sub, pub):
            conn.close()
            await conn.wait_closed()


async def test_receiver_collects_many_channels(redis_standalone: Any) -> None:
    receiver = Receiver()
    sub = await create_connection(redis_standalone.address)
    try:
        await sub.execute_pubsub("SUBSCRIBE", receiver.channel("r1"), receiver.channel("r2"))
        await sub.execute_pubsub("PSUBSCRIBE", receiver.pattern("rp*"))
        pub = await create_connection(redis_standalone.address)
        await pub.execute("PUBLISH", "r1", "a")
        await pub.execute("PUBLISH", "r2", "b")
        await pub.execute("PUBLISH", "rpx", "c")
        pub.close()
        await pub.wait_closed()
        got = [await receiver.get(encoding="utf-8") for _ in range(3)]
        assert [(s.name, m) for s, m in got] == [
            (b"r1", "a"), (b"r2", "b"), (b"rp*", (b"rpx", "c")),
        ]
        assert set(receiver.channels) == {b"r1", b"r2"} and set(receiver.patterns) == {b"rp*"}
        receiver.stop()
        assert await receiver.wait_message() is False
    finally:
        sub.close()
        await sub.wait_closed()


async def _publish_until_received(pool: Any, name: str, channel: Channel, payload: bytes) -> None:
    """Publish until the subscriber has it (it may still be resubscribing)."""
    for _ in range(100):
        await pool.execute("PUBLISH", name, payload)
        try:
            message = await asyncio.wait_for(channel.get(), 0.1)
        except asyncio.TimeoutError:
            continue
        while message != payload:  # older copies first
            message = await asyncio.wait_for(channel.get(), 1)
        return
    raise AssertionError(f"{payload!r} never arrived on {channel!r}")


async def test_pool_channel_survives_client_kill(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, maxsize=2)
    try:
        await pool.execute_pubsub("SUBSCRIBE", "survivor")
        await pool.execute_pubsub("PSUBSCRIBE", "surv*")
        channel = pool.pubsub_channels[b"survivor"]
        pattern = pool.pubsub_patterns[b"surv*"]
        await _publish_until_received(pool, "survivor", channel, b"before")
        assert await pool.execute("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        await _publish_until_received(pool, "survivor", channel, b"after")
        assert pool.pubsub_channels[b"survivor"] is channel and channel.is_active
        while pattern.qsize:
            await pattern.get()
        await pool.execute("PUBLISH", "survivor", "p")
        assert await asyncio.wait_for(pattern.get(), 2) == (b"survivor", b"p")
    finally:
        pool.close()
        await pool.wait_closed()
    while channel.qsize:  # unread messages keep a closed channel active until read
        await channel.get()
    assert not channel.is_active


async def test_pool_channel_survives_server_restart(local_standalone_factory: Any) -> None:
    server = local_standalone_factory()
    pool = await create_pool(server.address, maxsize=2)
    try:
        await pool.execute_pubsub("SUBSCRIBE", "restart")
        channel = pool.pubsub_channels[b"restart"]
        await _publish_until_received(pool, "restart", channel, b"one")
        server.kill()
        await asyncio.sleep(0.3)
        server.restart()
        await _publish_until_received(pool, "restart", channel, b"two")
        assert channel.is_active
    finally:
        pool.close()
        await pool.wait_closed()
    assert not channel.is_active


async def test_pool_unsubscribe_ends_channel(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address)
    try:
        await pool.execute_pubsub("SUBSCRIBE", "bye")
        channel = pool.pubsub_channels[b"bye"]
        await pool.execute_pubsub("UNSUBSCRIBE", "bye")
        assert b"bye" not in pool.pubsub_channels
        assert not channel.is_active
    finally:
        pool.close()
        await pool.wait_closed()
