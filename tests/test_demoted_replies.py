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
from clustermgr.errors import (
    ConnectionClosedError,
    ConnectionForcedCloseError,
    MovedError,
    ReplyError,
)
from clustermgr.pool import ConnectionsPool

pytestmark = pytest.mark.timeout(30)

REPLIES = {b"SET": b"+OK\r\n", b"GET": b"$1\r\nv\r\n", b"INCR": b"-MOVED 12 127.0.0.1:1\r\n"}


class HeldReplies:
    """Answers each command (scripted per name; PING +PONG at once) only once released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.received: list[list[bytes]] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        parser = hiredis.Reader()
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                parser.feed(data)
                while (command := parser.gets()) is not False:
                    self.received.append(command)
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
            assert conn.stats.errors == {"MovedError": 2}  # counted as without demotion
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


async def test_a_caller_that_gave_up_before_the_reply_after_the_demotion() -> None:
    server = HeldReplies()
    async with server.running() as address:
        conn = await _connection(address)
        try:
            cancelled = conn.execute("SET", "a", "1")
            after = conn.execute("GET", "a")
            await asyncio.sleep(0.05)
            conn.demote(5.0)
            cancelled.cancel()
            server.release.set()
            with pytest.raises(ConnectionForcedCloseError):
                await asyncio.wait_for(after, 5)
            assert cancelled.cancelled()
            assert not conn.closed
            assert await conn.execute("GET", "a") == b"v"
        finally:
            conn.close()
            await conn.wait_closed()


async def test_the_connection_lost_after_the_demotion() -> None:
    server = HeldReplies()
    async with server.running() as address:
        conn = await _connection(address)
        try:
            lost = conn.execute("SET", "b", "2")
            await asyncio.sleep(0.05)
            conn.demote(5.0)
            assert server._writers
            for writer in server._writers:
                writer.transport.abort()
            with pytest.raises(ConnectionClosedError) as caught:
                await asyncio.wait_for(lost, 5)
            assert caught.value.may_have_executed is True
        finally:
            conn.close()
            await conn.wait_closed()


async def test_commands_not_yet_written_are_withdrawn_as_not_executed() -> None:
    server = HeldReplies()
    async with server.running() as address:
        conn = await _connection(address)
        try:
            written = conn.execute("SET", "w", "1")  # an idle connection writes at once
            buffered = conn.execute("SET", "u", "1")  # the rest of the tick is coalesced
            conn.demote(5.0)
            with pytest.raises(ConnectionClosedError, match="before the command was") as caught:
                await asyncio.wait_for(buffered, 5)
            assert caught.value.may_have_executed is False
            server.release.set()
            with pytest.raises(ConnectionForcedCloseError):
                await asyncio.wait_for(written, 5)
            await asyncio.sleep(0.1)
            assert [c[1] for c in server.received if c[0] == b"SET"] == [b"w"]
            assert not conn.closed
        finally:
            conn.close()
            await conn.wait_closed()


@pytest.mark.parametrize("pending", ["batch", "multi", "blocking"])
async def test_a_batch_transaction_or_blocking_command_pending_drops_at_once(
    pending: str,
) -> None:
    server = HeldReplies()
    async with server.running() as address:
        conn = await _connection(address)
        try:
            if pending == "batch":
                futures = [conn.execute_batch([("SET", "a", "1"), ("GET", "a")])]
            elif pending == "multi":
                futures = [conn.execute("MULTI"), conn.execute("SET", "a", "1")]
            else:
                futures = [conn.execute("BLPOP", "list", "5")]
            plain = conn.execute("GET", "a")
            await asyncio.sleep(0.05)
            conn.demote(5.0)
            for future in [*futures, plain]:
                with pytest.raises(ConnectionForcedCloseError, match="demoted") as caught:
                    await asyncio.wait_for(future, 2)
                assert caught.value.may_have_executed is True
            assert conn.closed
        finally:
            conn.close()
            await conn.wait_closed()


async def test_a_frozen_server_with_a_full_socket_is_dropped_after_the_grace() -> None:
    """The server reads nothing: megabytes wait in the client's write buffer; the
    grace still ends everything (an abort, not a close that waits to flush)."""
    handlers: list[asyncio.StreamWriter] = []

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(writer)
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    try:
        conn = await _connection(server.sockets[0].getsockname()[:2])
        try:
            big = b"x" * (8 * 1024 * 1024)
            pending = [conn.execute("SET", f"k{i}", big) for i in range(4)]
            await asyncio.sleep(0.2)
            start = loop.time()
            conn.demote(0.3)
            results = await asyncio.wait_for(
                asyncio.gather(*pending, return_exceptions=True), 5
            )
            assert loop.time() - start < 2.0
            assert all(isinstance(r, ConnectionForcedCloseError) for r in results), results
            await asyncio.wait_for(conn.wait_closed(), 2)
        finally:
            conn.close()
            await conn.wait_closed()
    finally:
        server.close()
        for writer in handlers:
            writer.transport.abort()
        await server.wait_closed()


async def test_a_lent_connection_is_dropped_idle_or_not() -> None:
    server = HeldReplies()
    server.release.set()
    async with server.running() as address:
        pool = ConnectionsPool(address, minsize=2, maxsize=2, read_timeout=None)
        try:
            await pool.execute("PING")
            lent = await pool.acquire()
            try:
                assert pool.fence() == 1  # nothing in flight anywhere: the lent one only
                await asyncio.wait_for(lent.wait_closed(), 2)
                with pytest.raises(ConnectionClosedError) as caught:
                    lent.execute("SET", "k", "v")
                assert caught.value.may_have_executed is False
            finally:
                pool.release(lent)
            assert await pool.execute("GET", "k") == b"v"
        finally:
            pool.close()
            await pool.wait_closed()
