"""``RedisConnection.demote``: replies due from a server just demoted from master.

A fake server holds its replies until the test releases them, so each reply
arrives after the demotion: error replies reach their command (and its error
hook), acknowledgements fail with ``may_have_executed=True``, silence ends
with the connection closed after the grace, and only what was pending at the
demotion is distrusted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import hiredis
import pytest

from clustermgr.connection import RedisConnection, create_connection
from clustermgr.errors import ConnectionForcedCloseError, MovedError, ReplyError

pytestmark = pytest.mark.timeout(30)

REPLIES = {b"SET": b"+OK\r\n", b"GET": b"$1\r\nv\r\n", b"INCR": b"-MOVED 12 127.0.0.1:1\r\n"}


class HeldReplies:
    """Answers each command (scripted per name; PING +PONG at once) only once released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        parser = hiredis.Reader()
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                parser.feed(data)
                while (command := parser.gets()) is not False:
                    name = command[0].upper()
                    if name != b"PING":
                        await self.release.wait()
                    writer.write(REPLIES.get(name, b"+PONG\r\n"))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[tuple[str, int]]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield self.server.sockets[0].getsockname()[:2]
        finally:
            self.server.close()
            for writer in self._writers:
                writer.transport.abort()
            await self.server.wait_closed()


async def _connection(address: tuple[str, int]) -> RedisConnection:
    return await create_connection(address, read_timeout=None)


async def test_an_acknowledgement_after_the_demotion_may_have_executed() -> None:
    server = HeldReplies()
    async with server.running() as address:
        conn = await _connection(address)
        try:
            pending = conn.execute("SET", "k", "v")
            await asyncio.sleep(0.05)
            conn.demote(5.0)
            server.release.set()
            with pytest.raises(ConnectionForcedCloseError, match="demoted") as caught:
                await asyncio.wait_for(pending, 5)
            assert caught.value.may_have_executed is True
            # Commands sent after the demotion are answered as usual; reads too.
            assert await conn.execute("SET", "k", "v") == b"OK"
            assert not conn.closed
        finally:
            conn.close()
            await conn.wait_closed()


async def test_an_error_reply_after_the_demotion_reaches_the_error_hook() -> None:
    server = HeldReplies()
    seen: list[BaseException] = []

    def hook(future: asyncio.Future[Any], error: BaseException, *_: Any) -> bool:
        seen.append(error)
        future.set_result("retried elsewhere")
        return True

    async with server.running() as address:
        conn = await _connection(address)
        try:
            moved = conn.execute("INCR", "k", on_error=hook)
            plain = conn.execute("INCR", "k")
            await asyncio.sleep(0.05)
            conn.demote(5.0)
            server.release.set()
            assert await asyncio.wait_for(moved, 5) == "retried elsewhere"
            assert len(seen) == 1 and isinstance(seen[0], MovedError)
            with pytest.raises(ReplyError):
                await asyncio.wait_for(plain, 5)
        finally:
            conn.close()
            await conn.wait_closed()


async def test_silence_after_the_demotion_closes_after_the_grace() -> None:
    server = HeldReplies()
    loop = asyncio.get_running_loop()
    async with server.running() as address:
        conn = await _connection(address)
        try:
            pending = conn.execute("GET", "k")
            await asyncio.sleep(0.05)
            start = loop.time()
            conn.demote(0.3)
            with pytest.raises(ConnectionForcedCloseError) as caught:
                await asyncio.wait_for(pending, 5)
            assert 0.25 <= loop.time() - start < 2.0
            assert caught.value.may_have_executed is True
            assert conn.closed
        finally:
            conn.close()
            await conn.wait_closed()


async def test_answered_in_time_the_grace_does_not_close() -> None:
    server = HeldReplies()
    async with server.running() as address:
        conn = await _connection(address)
        try:
            pending = conn.execute("GET", "k")
            await asyncio.sleep(0.05)
            conn.demote(0.3)
            server.release.set()
            with pytest.raises(ConnectionForcedCloseError):
                await asyncio.wait_for(pending, 5)
            await asyncio.sleep(0.5)
            assert not conn.closed
            assert await conn.execute("GET", "k") == b"v"
        finally:
            conn.close()
            await conn.wait_closed()


async def test_a_cancelled_caller_and_a_lost_connection_after_the_demotion() -> None:
    server = HeldReplies()
    async with server.running() as address:
        conn = await _connection(address)
        try:
            cancelled = conn.execute("SET", "a", "1")
            lost = conn.execute("SET", "b", "2")
            await asyncio.sleep(0.05)
            conn.demote(5.0)
            cancelled.cancel()
            conn.close()
            with pytest.raises(ConnectionForcedCloseError) as caught:
                await asyncio.wait_for(lost, 5)
            assert caught.value.may_have_executed is True
            assert cancelled.cancelled()
        finally:
            conn.close()
            await conn.wait_closed()


async def test_a_batch_pending_closes_at_once() -> None:
    server = HeldReplies()
    async with server.running() as address:
        conn = await _connection(address)
        try:
            batch = conn.execute_batch([("SET", "a", "1"), ("GET", "a")])
            await asyncio.sleep(0.05)
            conn.demote(5.0)
            with pytest.raises(ConnectionForcedCloseError):
                await asyncio.wait_for(batch, 5)
            assert conn.closed
        finally:
            conn.close()
            await conn.wait_closed()
