"""A hostile server cannot make one reply cost unbounded memory (``max_reply_size``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fake_server import FakeServer
from hypothesis import given, settings
from hypothesis import strategies as st
from test_resp_fuzz import _replies

from clustermgr import create_connection, create_pool
from clustermgr.errors import ConnectionClosedError, ProtocolError
from clustermgr.replybound import DEFAULT_MAX_REPLY_SIZE, ReplyBound, ReplyTooLargeError


def _rss() -> int:
    with open("/proc/self/statm") as stat:
        return int(stat.read().split()[1]) * 4096


@asynccontextmanager
async def _fatal_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Whatever reaches the loop's exception handler (asyncio's "Fatal error" logs)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(previous)


async def _refused(future: asyncio.Future[Any]) -> ReplyTooLargeError:
    with pytest.raises(ConnectionClosedError) as info:
        await asyncio.wait_for(future, 30)
    assert info.value.may_have_executed is True
    cause = info.value.__cause__
    assert isinstance(cause, ReplyTooLargeError), repr(cause)
    assert isinstance(cause, ProtocolError)
    return cause


async def test_announced_huge_bulk_is_refused_at_its_header_with_little_memory() -> None:
    """10**12 bytes announced and streamed: refused at once, RSS barely moves (default bound)."""
    async with FakeServer() as server, _fatal_errors() as fatal:
        conn = await create_connection(server.address)
        before = _rss()
        cause = await _refused(conn.execute("EVIL", "stream", b"$1000000000000\r\n"))
        grown = _rss() - before
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert cause.bound == DEFAULT_MAX_REPLY_SIZE == 512 * 1024 * 1024
        assert cause.size >= 10**12
        assert str(cause.size) in str(cause) and "max_reply_size=536870912" in str(cause)
        assert grown < 32 * 1024 * 1024, f"RSS grew by {grown} bytes"
        assert fatal == []


async def test_streamed_reply_past_the_bound_is_refused_before_it_is_buffered() -> None:
    """An aggregate that fits its announcement but streams past the bound."""
    bound = 4 * 1024 * 1024
    async with FakeServer() as server, _fatal_errors() as fatal:
        conn = await create_connection(server.address, max_reply_size=bound)
        before = _rss()
        # One element announced, then an endless simple string: no header says how big.
        cause = await _refused(conn.execute("EVIL", "stream", b"*1\r\n+"))
        grown = _rss() - before
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert cause.bound == bound and cause.size > bound
        assert "runs past" in str(cause)
        assert grown < bound + 16 * 1024 * 1024, f"RSS grew by {grown} bytes"
        assert server.streamed < 64 * 1024 * 1024  # the client hung up early
        assert fatal == []


@pytest.mark.parametrize("header", [b"*1000000000\r\n", b"%400000000\r\n", b"*4294967295\r\n"])
async def test_announced_huge_aggregate_is_refused(header: bytes) -> None:
    async with FakeServer() as server, _fatal_errors() as fatal:
        conn = await create_connection(server.address)
        cause = await _refused(conn.execute("EVIL", "garbage", header))
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert cause.size > DEFAULT_MAX_REPLY_SIZE
        assert fatal == []


async def test_replies_before_the_refused_one_are_delivered() -> None:
    async with FakeServer() as server:
        conn = await create_connection(server.address, max_reply_size=1000)
        first = conn.execute("EVIL", "garbage", b"$5\r\nfirst\r\n$5000\r\n")
        second = conn.execute("PING")  # its "reply" is the 5000-byte bulk
        assert await first == b"first"
        cause = await _refused(second)
        assert cause.size >= 5000
        await asyncio.wait_for(conn.wait_closed(), 5)


async def test_a_reply_within_the_bound_passes() -> None:
    async with FakeServer() as server:
        conn = await create_connection(server.address, max_reply_size=1000)
        try:
            value = b"v" * 980
            assert await conn.execute("ECHO", value) == value  # 988 bytes on the wire
            assert await conn.execute("PING") == b"PONG"
        finally:
            conn.close()
            await conn.wait_closed()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "512", True])
async def test_bad_max_reply_size_is_refused_at_creation(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_reply_size"):
        await create_connection(("127.0.0.1", 1), max_reply_size=bad)


async def test_pool_passes_max_reply_size_to_its_connections() -> None:
    async with FakeServer() as server:
        pool = await create_pool(server.address, minsize=1, maxsize=1, max_reply_size=1000)
        try:
            cause = await _refused(pool.execute("EVIL", "garbage", b"$5000\r\n"))
            assert cause.bound == 1000
        finally:
            pool.close()
            await pool.wait_closed()


def test_bound_follows_replies_cut_anywhere() -> None:
    """Every cut of a stream of replies leaves the walk in step (no refusal under the bound)."""
    wire = (
        b"+OK\r\n$5\r\nhello\r\n*3\r\n:1\r\n$-1\r\n*2\r\n+a\r\n$3\r\nabc\r\n"
        b"%1\r\n+k\r\n+v\r\n_\r\n>2\r\n+p\r\n+q\r\n*0\r\n$0\r\n\r\n"
    )
    for cut in range(len(wire) + 1):
        for second in range(cut, len(wire) + 1):
            bound = ReplyBound(30)
            for piece in (wire[:cut], wire[cut:second], wire[second:]):
                assert bound.scan(piece) is None
            assert bound._stack == [] and bound._skip == 0 and bound._line is None
    assert ReplyBound(29).scan(wire) is not None  # the 30-byte array does not fit 29


@given(st.lists(_replies, min_size=1, max_size=6), st.data())
@settings(max_examples=int(os.environ.get("CLUSTERMGR_BOUND_EXAMPLES", "300")), deadline=None)
def test_bound_never_refuses_a_reply_that_fits(replies: list[bytes], data: Any) -> None:
    """Valid replies cut anywhere: the walk agrees with the parser on where each ends."""
    wire = b"".join(replies)
    largest = max(len(reply) for reply in replies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    fits, tight = ReplyBound(largest), ReplyBound(largest - 1)
    refused = [tight.scan(piece) for piece in pieces]
    assert [fits.scan(piece) for piece in pieces] == [None] * len(pieces)
    assert fits._stack == [] and fits._skip == 0 and fits._line is None
    assert any(error is not None for error in refused)  # one byte less: refused


@pytest.mark.parametrize("reply", [b"+OK\r\n", b":1\r\n", b"$5\r\nhello\r\n", b"$0\r\n\r\n"])
def test_a_lone_reply_is_held_to_the_exact_bound(reply: bytes) -> None:
    assert ReplyBound(len(reply)).scan(reply) is None
    assert ReplyBound(len(reply) - 1).scan(reply) is not None
