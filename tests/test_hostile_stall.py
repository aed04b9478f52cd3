"""``read_timeout`` counts whole replies: a server dribbling bytes of a reply is stalled."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from clustermgr import create_connection, errors

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def _server(handle: Handler) -> AsyncIterator[tuple[str, int]]:
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await handle(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        for writer in writers:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def _dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"*1000000\r\n")
    for _ in range(50):  # bounded: 50 elements, 0.15 s apart
        await asyncio.sleep(0.15)
        if writer.transport.is_closing():
            return
        writer.write(b"+\r\n")


async def test_a_reply_dribbled_byte_by_byte_ends_at_read_timeout() -> None:
    async with _server(_dribble) as address:
        conn = await create_connection(address, read_timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(errors.ConnectionClosedError) as info:
                await asyncio.wait_for(conn.execute("GET", "k"), 5)
            assert time.monotonic() - started < 2
            assert info.value.may_have_executed is True
            assert "read_timeout" in str(info.value)
        finally:
            conn.close()
            await conn.wait_closed()


async def _slow_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    received = 0
    while received < 10:  # one reply per 0.2 s, each a whole reply
        data = await reader.read(65536)
        if not data:
            return
        for _ in range(data.count(b"*")):
            await asyncio.sleep(0.2)
            writer.write(b"+OK\r\n")
            received += 1


async def test_a_long_pipeline_of_whole_replies_is_never_cut() -> None:
    async with _server(_slow_answers) as address:
        conn = await create_connection(address, read_timeout=0.5)
        try:
            replies = await asyncio.wait_for(
                asyncio.gather(*(conn.execute("GET", "k") for _ in range(10))), 10
            )  # 2 s in all, 4 x read_timeout, but a whole reply every 0.2 s
            assert replies == [b"OK"] * 10
        finally:
            conn.close()
            await conn.wait_closed()


async def _pushes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    for _ in range(50):  # bounded: 50 RESP3 push frames, 0.15 s apart, never a reply
        await asyncio.sleep(0.15)
        if writer.transport.is_closing():
            return
        writer.write(b">1\r\n+x\r\n")


async def test_push_frames_do_not_restart_the_stall_clock() -> None:
    async with _server(_pushes) as address:
        conn = await create_connection(address, read_timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(errors.ConnectionClosedError, match="read_timeout"):
                await asyncio.wait_for(conn.execute("GET", "k"), 5)
            assert time.monotonic() - started < 2
        finally:
            conn.close()
            await conn.wait_closed()
