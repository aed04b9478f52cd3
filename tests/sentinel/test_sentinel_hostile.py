"""A hostile sentinel's malformed events and answers end as typed errors or logged drops."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from fake_sentinel import FakeSentinel, MasterView

from clustermgr import create_connection
from clustermgr.errors import ProtocolError
from clustermgr.sentinel.discovery import discover_master, discover_replicas
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
async def test_a_malformed_sentinels_listing_is_a_typed_error_naming_the_sentinel(
    reply: bytes,
) -> None:
    async with _LyingSentinel(b"SENTINELS", reply) as lying:
        client = await create_sentinel([lying.address])
        try:
            with pytest.raises(SentinelsUnreachableError, match=f"127.0.0.1:{lying.port}") as e:
                await client.sentinels("svc")
            assert isinstance(e.value.failures[lying.address], ProtocolError)
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
            with pytest.raises(SentinelsUnreachableError, match=f"127.0.0.1:{lying.port}") as e:
                await client.replicas("svc")
            assert isinstance(e.value.failures[lying.address], ProtocolError)
            with pytest.raises(SentinelsUnreachableError, match=f"127.0.0.1:{lying.port}"):
                await discover_replicas(client, "svc")
        finally:
            client.close()
            await client.wait_closed()


_BAD_ADDR_REPLIES = [
    b":5\r\n",  # not an array
    b"*1\r\n$9\r\n127.0.0.1\r\n",  # one element
    b"*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n$1\r\nx\r\n",  # three elements
    b"*2\r\n:1\r\n$4\r\n6379\r\n",  # host not a string
    b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n0x10\r\n",  # port not an integer
    b"*2\r\n$9\r\n127.0.0.1\r\n$5\r\n99999\r\n",  # port out of range
    b"*2\r\n$9\r\n127.0.0.1\r\n*0\r\n",  # port an array
]


@pytest.mark.parametrize("reply", _BAD_ADDR_REPLIES)
async def test_a_malformed_master_address_is_logged_and_the_next_sentinel_asked(
    reply: bytes, caplog: pytest.LogCaptureFixture,
) -> None:
    async with _LyingSentinel(b"GET-MASTER-ADDR-BY-NAME", reply) as lying, FakeSentinel(
        "svc", MasterView(("127.0.0.1", 4242))
    ) as honest:
        client = await create_sentinel([lying.address, honest.address])
        try:
            with caplog.at_level(logging.WARNING, logger="clustermgr"):
                assert await client.master_address("svc") == ("127.0.0.1", 4242)
            logged = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
            assert len(logged) == 1 and f"127.0.0.1:{lying.port}" in logged[0]
            assert len(logged[0]) < 600
        finally:
            client.close()
            await client.wait_closed()


async def test_when_every_sentinel_answers_malformed_the_error_names_each_one() -> None:
    async with _LyingSentinel(b"GET-MASTER-ADDR-BY-NAME", b":5\r\n") as first, _LyingSentinel(
        b"GET-MASTER-ADDR-BY-NAME", b"*2\r\n$1\r\nh\r\n$2\r\nxx\r\n"
    ) as second:
        client = await create_sentinel([first.address, second.address])
        try:
            with pytest.raises(SentinelsUnreachableError) as caught:
                await client.master_address("svc")
            text = str(caught.value)
            assert f"127.0.0.1:{first.port}" in text and f"127.0.0.1:{second.port}" in text
            assert "malformed" in text
            assert set(caught.value.failures) == {first.address, second.address}
        finally:
            client.close()
            await client.wait_closed()


async def test_a_malformed_listing_from_the_first_sentinel_asks_the_next() -> None:
    async with _LyingSentinel(b"SENTINELS", b":5\r\n") as lying, FakeSentinel(
        "svc", MasterView(("127.0.0.1", 1))
    ) as honest:
        client = await create_sentinel([lying.address, honest.address])
        try:
            assert await client.sentinels("svc") == []
        finally:
            client.close()
            await client.wait_closed()


@pytest.mark.parametrize("reply", [b":5\r\n", b"*2\r\n$2\r\nip\r\n$1\r\nh\r\n",
                                   b"*4\r\n$2\r\nip\r\n$1\r\nh\r\n$4\r\nport\r\n$2\r\nxx\r\n"])
async def test_malformed_master_views_from_every_sentinel_name_each_one(
    reply: bytes, caplog: pytest.LogCaptureFixture,
) -> None:
    async with _LyingSentinel(b"MASTER", reply) as first, _LyingSentinel(
        b"MASTER", reply
    ) as second:
        client = await create_sentinel([first.address, second.address])
        try:
            with caplog.at_level(logging.WARNING, logger="clustermgr"), pytest.raises(
                SentinelsUnreachableError
            ) as caught:
                await discover_master(client, "svc")
            text = str(caught.value)
            assert f"127.0.0.1:{first.port}" in text and f"127.0.0.1:{second.port}" in text
            assert "malformed" in text
            logged = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
            assert len(logged) == 2 and all(len(m) < 600 for m in logged)
        finally:
            client.close()
            await client.wait_closed()
