"""The event bus, and the events of a single-server pool driven by real faults."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from clustermgr import create_pool
from clustermgr.events import (
    Event,
    EventBus,
    NodeDown,
    NodeUp,
    PoolExhausted,
    PubSubDisconnected,
    PubSubResubscribed,
    Redirect,
)


def test_bus_is_inactive_without_listeners() -> None:
    bus = EventBus()
    assert not bus.active
    seen: list[Event] = []
    bus.subscribe(seen.append, NodeDown)
    assert bus.active
    bus.emit(NodeUp(("127.0.0.1", 1)))
    bus.emit(NodeDown(("127.0.0.1", 1), "refused"))
    assert [type(e) for e in seen] == [NodeDown]
    bus.unsubscribe(seen.append)
    assert not bus.active


def test_failing_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("bug in the application")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    bus.emit(NodeUp(("127.0.0.1", 1)))
    assert len(seen) == 1
    assert "bug in the application" in caplog.text


async def test_stream_drops_oldest_when_the_consumer_is_slow() -> None:
    bus = EventBus()
    async with bus.stream(Redirect, maxsize=3) as stream:
        for slot in range(5):
            bus.emit(Redirect("MOVED", slot, None, ("127.0.0.1", 2)))
        bus.emit(NodeUp(("127.0.0.1", 1)))  # filtered out by type
        assert stream.dropped == 2 and stream.pending == 3
        got = [await stream.get() for _ in range(3)]
        assert [e.slot for e in got if isinstance(e, Redirect)] == [2, 3, 4]
        waiter = asyncio.ensure_future(stream.get())
        await asyncio.sleep(0)
        bus.emit(Redirect("ASK", 9, None, ("127.0.0.1", 2)))
        assert isinstance(await waiter, Redirect)
    assert not bus.active
    assert [e async for e in stream] == []  # closed: iteration ends


async def test_forgotten_stream_unsubscribes_itself() -> None:
    bus = EventBus()
    bus.stream()
    bus.emit(NodeUp(("127.0.0.1", 1)))  # the stream was garbage-collected already
    assert not bus.active


def test_event_line_and_json() -> None:
    event = PubSubResubscribed(("127.0.0.1", 7000), (b"news",), lost_at=1.0, gap_ms=12.5)
    assert "127.0.0.1:7000" in str(event) and "12 ms" in str(event)
    data = json.loads(json.dumps(event.to_dict()))
    assert data["kind"] == "pubsub_resubscribed" and data["channels"] == ["news"]
    assert event.restored_at == event.at


async def test_pubsub_kill_emits_disconnected_then_resubscribed(
    local_standalone_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="clustermgr")
    server = local_standalone_factory()
    pool = await create_pool(server.address)
    try:
        stream = pool.events.stream(PubSubDisconnected, PubSubResubscribed)
        await pool.execute_pubsub("SUBSCRIBE", "ev:news")
        await pool.execute_pubsub("PSUBSCRIBE", "ev:*")
        before = time.time()
        assert await pool.execute("CLIENT", "KILL", "TYPE", "pubsub") == 1
        lost = await asyncio.wait_for(stream.get(), 5)
        back = await asyncio.wait_for(stream.get(), 5)
        assert isinstance(lost, PubSubDisconnected) and isinstance(back, PubSubResubscribed)
        assert lost.address == server.address and lost.channels == (b"ev:news",)
        assert lost.patterns == (b"ev:*",) and lost.lost_at >= before
        assert back.channels == (b"ev:news",) and back.patterns == (b"ev:*",)
        assert back.lost_at is not None and before <= back.lost_at <= back.restored_at
        assert 0 <= back.gap_ms < 5000
        stats = pool.stats()
        assert stats.reconnects == 1 and stats.resubscribes == 2
        await pool.execute("PUBLISH", "ev:news", "after")
        assert await asyncio.wait_for(pool.pubsub_channels[b"ev:news"].get(), 5) == b"after"
        lines = [r for r in caplog.records if "pub/sub connection" in r.getMessage()]
        assert len(lines) == 2 and {r.name for r in lines} == {"clustermgr.pubsub"}
    finally:
        pool.close()
        await pool.wait_closed()


async def test_waiting_acquire_emits_pool_exhausted(redis_standalone: Any) -> None:
    pool = await create_pool(redis_standalone.address, maxsize=1)
    try:
        seen: list[Event] = []
        pool.events.subscribe(seen.append, PoolExhausted)
        conn = await pool.acquire()
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.01)
        assert [(e.waiting, e.maxsize, e.address) for e in seen if isinstance(e, PoolExhausted)] \
            == [(1, 1, redis_standalone.address)]
        assert pool.stats().nodes[0].exhausted == 1
        pool.release(conn)
        pool.release(await waiter)
    finally:
        pool.close()
        await pool.wait_closed()
