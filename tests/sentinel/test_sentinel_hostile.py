"""A hostile sentinel's malformed events and answers end as typed errors or logged drops."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from fake_sentinel import FakeSentinel, MasterView

from clustermgr import create_connection
from clustermgr.errors import ProtocolError
from clustermgr.sentinel.discovery import discover_replicas
from clustermgr.sentinel.errors import SentinelsUnreachableError
from clustermgr.sentinel.events import SentinelEvent
from clustermgr.sentinel.monitor import SentinelMonitor
from clustermgr.sentinel.sentinel import create_sentinel

pytestmark = pytest.mark.timeout(60)


async def test_a_malformed_event_is_logged_and_the_monitor_keeps_listening(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[SentinelEvent] = []
    got = asyncio.Event()

    def on_event(event: SentinelEvent) -> None:
        events.append(event)
        got.set()

    async with FakeSentinel("svc", MasterView(("127.0.0.1", 1))) as sentinel:
        monitor = SentinelMonitor(connect=create_connection, on_event=on_event)
        try:
            with caplog.at_level(logging.WARNING, logger="clustermgr"):
                monitor.watch(sentinel.address)
                for _ in range(100):
                    if sentinel.subscribers and monitor.connected:
                        break
                    await asyncio.sleep(0.05)
                bad: Any = [1]  # a payload that is an array
                sentinel.publish("+switch-master", bad)
                sentinel.publish("+sdown", "x" * 10_000)
                await asyncio.wait_for(got.wait(), 5)
            assert [e.kind for e in events] == ["+sdown"]
            assert monitor.connected == [sentinel.address]
            dropped = [r for r in caplog.records if "malformed" in r.getMessage()]
            assert len(dropped) == 1 and len(dropped[0].getMessage()) < 600
        finally:
            monitor.close()
            await asyncio.wait_for(monitor.wait_closed(), 5)


class _LyingSentinel(FakeSentinel):
    """Answers one SENTINEL subcommand with a reply of the wrong shape."""

    def __init__(self, subcommand: bytes, reply: bytes) -> None:
        super().__init__("svc", MasterView(("127.0.0.1", 1)))
        self.lie = (subcommand, reply)

    def _reply(self, command: list[bytes]) -> bytes:
        if len(command) > 1 and command[1].upper() == self.lie[0]:
            return self.lie[1]
        return super()._reply(command)


@pytest.mark.parametrize("reply", [b":5\r\n", b"*1\r\n:5\r\n"])
async def test_a_malformed_sentinels_listing_is_a_protocol_error_naming_the_sentinel(
    reply: bytes,
) -> None:
    async with _LyingSentinel(b"SENTINELS", reply) as lying:
        client = await create_sentinel([lying.address])
        try:
            with pytest.raises(ProtocolError, match=f"sentinel 127.0.0.1:{lying.port}"):
                await client.sentinels("svc")
        finally:
            client.close()
            await client.wait_closed()


@pytest.mark.parametrize("reply", [b":5\r\n", b"*1\r\n:5\r\n"])
async def test_a_malformed_replicas_listing_is_a_typed_error_naming_the_sentinel(
    reply: bytes,
) -> None:
    async with _LyingSentinel(b"REPLICAS", reply) as lying:
        client = await create_sentinel([lying.address])
        try:
            with pytest.raises(ProtocolError, match=f"sentinel 127.0.0.1:{lying.port}"):
                await client.replicas("svc")
            with pytest.raises(SentinelsUnreachableError, match=f"127.0.0.1:{lying.port}"):
                await discover_replicas(client, "svc")
        finally:
            client.close()
            await client.wait_closed()
