"""A hostile or broken server's replies end as typed errors, never as loop tracebacks.

Each case: the bad bytes arrive on a real connection from a fake server; the
connection closes with a :class:`ProtocolError` as the cause, pending commands
fail with ``may_have_executed=True`` (they were written), nothing reaches the
loop's exception handler and ``wait_closed()`` returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fake_server import FakeServer

from clustermgr import create_connection, protocol
from clustermgr.connection import RedisConnection
from clustermgr.errors import ConnectionClosedError, ProtocolError


@asynccontextmanager
async def _fatal_errors() -> AsyncIterator[list[dict[str, Any]]]:
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(previous)


async def _typed_close(conn: RedisConnection, *futures: asyncio.Future[Any]) -> ProtocolError:
    """Every future failed as written-and-lost, with the same ProtocolError as the cause."""
    causes = []
    for future in futures:
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(future, 5)
        assert info.value.may_have_executed is True
        assert isinstance(info.value.__cause__, ProtocolError), repr(info.value.__cause__)
        causes.append(info.value.__cause__)
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert conn.closed
    return causes[0]


async def test_unsolicited_huge_reply_is_reported_as_a_bounded_excerpt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    huge = b"$%d\r\n%s\r\n" % (16 * 1024 * 1024, b"x" * (16 * 1024 * 1024))
    async with FakeServer() as server, _fatal_errors() as fatal:
        conn = await create_connection(server.address)
        with caplog.at_level(logging.INFO, logger="clustermgr"):
            assert await conn.execute("EVIL", "garbage", b"+first\r\n" + huge) == b"first"
            await asyncio.wait_for(conn.wait_closed(), 10)
        error = conn._close_error
        assert isinstance(error, ProtocolError)
        assert "unexpected reply" in str(error)
        assert len(str(error)) <= 1200, len(str(error))
        records = [r.getMessage() for r in caplog.records if r.name.startswith("clustermgr")]
        assert records and max(len(m) for m in records) <= 1300, [len(m) for m in records]
        assert fatal == []


_SUBSCRIBED = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"


@pytest.mark.parametrize("frame", [
    b"*1\r\n$7\r\nmessage\r\n",
    b"*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n",
    b"*1\r\n$8\r\npmessage\r\n",
    b"*1\r\n$8\r\nsmessage\r\n",
    b"*1\r\n$11\r\nunsubscribe\r\n",
    b"*2\r\n*0\r\n:1\r\n",  # an unhashable first item
    b"*2\r\n%1\r\n:1\r\n:2\r\n:3\r\n",  # a dict as the kind
])
async def test_short_or_odd_pubsub_frames_close_with_a_protocol_error(frame: bytes) -> None:
    async with FakeServer() as server, _fatal_errors() as fatal:
        server.replies[(b"SUBSCRIBE",)] = _SUBSCRIBED
        server.replies[(b"PING",)] = frame + b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        conn = await create_connection(server.address)
        await conn.execute_pubsub("SUBSCRIBE", "ch")
        channel = conn.pubsub_channels[b"ch"]
        cause = await _typed_close(conn, conn.execute("PING"))
        assert "cannot handle a reply" in str(cause) or "unexpected" in str(cause)
        assert channel.is_active is False
        assert fatal == []


async def test_memory_error_in_the_parser_is_typed() -> None:
    """``*4294967295`` makes hiredis allocate 32 GiB at once (no bound set to stop it first)."""
    async with FakeServer() as server, _fatal_errors() as fatal:
        conn = await create_connection(server.address, max_reply_size=None)
        cause = await _typed_close(conn, conn.execute("EVIL", "garbage", b"*4294967295\r\n"))
        assert isinstance(cause.__cause__, MemoryError)
        assert fatal == []


async def test_deep_nesting_with_an_encoding_is_typed() -> None:
    """1000 nested arrays: decoding them recursively hits the recursion limit."""
    async with FakeServer() as server, _fatal_errors() as fatal:
        conn = await create_connection(server.address, encoding="utf-8")
        first = conn.execute("EVIL", "garbage", b"*1\r\n" * 1000 + b"+deep\r\n")
        behind = conn.execute("PING")
        cause = await _typed_close(conn, first, behind)
        assert isinstance(cause.__cause__, RecursionError)
        assert fatal == []


async def test_resp3_push_frame_on_resp2_never_answers_a_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    push = b">3\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n:1\r\n"
    async with FakeServer() as server, _fatal_errors() as fatal:
        conn = await create_connection(server.address)
        try:
            with caplog.at_level(logging.WARNING, logger="clustermgr"):
                first = conn.execute("EVIL", "garbage", push + b"+mine\r\n")
                second = conn.execute("ECHO", "yours")
                assert await first == b"mine"
                assert await second == b"yours"
            assert any("push" in r.getMessage() for r in caplog.records)
            assert not conn.closed
        finally:
            conn.close()
            await conn.wait_closed()
        assert fatal == []


@pytest.mark.parametrize("close", ["client", "server"])
async def test_push_frames_not_yet_reported_are_counted_when_the_connection_closes(
    caplog: pytest.LogCaptureFixture, close: str,
) -> None:
    push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
    async with FakeServer() as server:
        conn = await create_connection(server.address)
        with caplog.at_level(logging.WARNING, logger="clustermgr"):
            try:
                assert await conn.execute("EVIL", "garbage", push * 5 + b"+mine\r\n") == b"mine"
                if close == "server":
                    with pytest.raises(ConnectionClosedError):
                        await conn.execute("EVIL", "garbage-close", push * 2)
                else:
                    assert await conn.execute("EVIL", "garbage", push * 2 + b"+x\r\n") == b"x"
            finally:
                conn.close()
                await asyncio.wait_for(conn.wait_closed(), 5)
        pushes = [r.getMessage() for r in caplog.records if "push" in r.getMessage()]
        assert len(pushes) == 2, pushes
        assert "6 more" in pushes[1] and "closed" in pushes[1]


def test_excerpt_is_bounded_for_huge_and_deep_values() -> None:
    deep: Any = b"x"
    for _ in range(5000):
        deep = [deep]
    for value in (b"x" * 10**7, "y" * 10**7, [b"z" * 10**6] * 1000, deep,
                  {b"k" * 10**6: [1] * 10**5}, ValueError("e" * 10**7)):
        assert len(protocol.excerpt(value)) <= 1024
    assert protocol.excerpt([b"a", 1]) == "[b'a', 1]"
