"""A tiny misbehaving RESP server on 127.0.0.1 for bad-input tests.

It answers ``PING`` (``+PONG``), ``ECHO x`` and anything else with ``+OK``,
except the command ``EVIL <mode> [payload]``, on which it misbehaves on that
connection only:

* ``garbage``   -- send ``payload`` and keep the connection open;
* ``garbage-close`` -- send ``payload``, then close;
* ``truncate``  -- send ``payload`` (meant to be a cut reply), then close;
* ``huge``      -- declare a 64 MB bulk string, send a few bytes of it, then nothing;
* ``silent``    -- never answer again (reads and discards everything);
* ``stream``    -- send ``payload`` (a header), then ``x`` bytes in 64 KiB writes until
  the client goes away (at most :data:`STREAM_CAP` bytes or 20 s).

``handshake_silent=True`` makes every connection silent from the start.
``replies`` scripts raw RESP answers: ``replies[(b"GET",)] = b"-MOVED 1 :7000\r\n"``
(keys are the upper-cased command name, optionally with its first argument;
the longer key wins); a list of replies is used in turn, its last one repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import hiredis

HUGE_BULK = 64 * 1024 * 1024
STREAM_CAP = 4 * 1024 * 1024 * 1024


class FakeServer:
    def __init__(self, *, handshake_silent: bool = False) -> None:
        self.handshake_silent = handshake_silent
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.accepted = 0
        self.open = 0
        self.received: list[list[bytes]] = []
        self.replies: dict[tuple[bytes, ...], bytes | list[bytes]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        #: Bytes sent by ``EVIL stream`` (all connections).
        self.streamed = 0

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def __aenter__(self) -> FakeServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        # Aborting the sockets ends the handlers (cancelling them would make
        # asyncio's stream callback log the CancelledError).
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.accepted += 1
        self.open += 1
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _scripted(self, command: list[bytes]) -> bytes | None:
        found = None
        if len(command) > 1:
            found = self.replies.get((command[0].upper(), command[1].upper()))
        if found is None:
            found = self.replies.get((command[0].upper(),))
        if isinstance(found, list):
            return found.pop(0) if len(found) > 1 else found[0]
        return found

    async def _stream(self, writer: asyncio.StreamWriter, header: bytes) -> None:
        writer.write(header)
        block = b"x" * 65536
        deadline = asyncio.get_running_loop().time() + 20
        while self.streamed < STREAM_CAP and asyncio.get_running_loop().time() < deadline:
            if writer.transport.is_closing():
                return
            writer.write(block)
            self.streamed += len(block)
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader()
        silent = self.handshake_silent
        while True:
            data = await reader.read(65536)
            if not data:
                return
            if silent:
                continue
            parser.feed(data)
            while True:
                command = parser.gets()
                if command is False:
                    break
                self.received.append(command)
                name = command[0].upper()
                scripted = self._scripted(command)
                if scripted is not None:
                    writer.write(scripted)
                elif name == b"PING":
                    writer.write(b"+PONG\r\n")
                elif name == b"ECHO":
                    writer.write(b"$%d\r\n%s\r\n" % (len(command[1]), command[1]))
                elif name == b"EVIL":
                    mode = command[1].decode()
                    payload = command[2] if len(command) > 2 else b""
                    if mode == "garbage":
                        writer.write(payload)
                    elif mode in ("garbage-close", "truncate"):
                        writer.write(payload)
                        await writer.drain()
                        return
                    elif mode == "huge":
                        writer.write(b"$%d\r\n" % HUGE_BULK + b"x" * 1000)
                        silent = True
                    elif mode == "silent":
                        silent = True
                    elif mode == "stream":
                        await self._stream(writer, payload)
                        return
                    else:
                        raise AssertionError(mode)
                    if silent:
                        break
                else:
                    writer.write(b"+OK\r\n")
            await writer.drain()
