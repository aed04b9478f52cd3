"""The write side of one connection: commands out to the socket, and what never left.

A command to an idle connection is written at once (a lone caller saves a
loop turn); the commands that follow in the same loop tick are coalesced into
one write. :attr:`CommandWriter.unflushed` counts the commands still queued
here, never handed to the kernel: they cannot have run, so the connection
fails them as not executed when it ends. Nothing is written once the
transport is closing (asyncio would drop the bytes), and a write the kernel
refuses closes the transport at once: the loss is then reported by asyncio,
and the command provably was not sent.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sized

from .stats import Counters

__all__ = ["CommandWriter"]


class CommandWriter:
    """Writes one connection's commands; counts what is still unsent.

    ``pending`` is the connection's queue of replies awaited (only its length
    is read: a command alone in it is written at once). ``stats`` counts the
    commands written.
    """

    __slots__ = (
        "_buffer", "_handle", "_loop", "_pending", "stats", "transport", "unflushed",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, pending: Sized, stats: Counters) -> None:
        self._loop = loop
        self._pending = pending
        self.stats = stats
        #: The socket's transport, once connected and until the connection ends.
        self.transport: asyncio.Transport | None = None
        self._buffer: list[bytes] = []
        #: Commands queued (the tail of ``pending``) whose bytes were not written.
        self.unflushed = 0
        self._handle: asyncio.Handle | None = None

    def attach(self, transport: asyncio.Transport) -> None:
        """Write to ``transport`` from now on (a TCP socket gets ``TCP_NODELAY``)."""
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes) -> None:
        """Write one encoded command: at once if it is the only reply awaited, else
        with the rest of this loop tick."""
        transport = self.transport
        if self._handle is None and len(self._pending) == 1 and transport is not None:
            # A closing transport drops the bytes; one that closes on this write
            # had it refused by the kernel (asyncio closes at once): not sent.
            if not transport.is_closing():
                transport.write(data)
                if not transport.is_closing():
                    self.stats.commands += 1
                    return
            self.unflushed += 1  # not sent: it fails as not executed with the loss
            return
        self._buffer.append(data)
        self.unflushed += 1
        if self._handle is None:
            self._handle = self._loop.call_soon(self._flush)

    def queue(self, data: bytes, count: int) -> None:
        """Write ``count`` encoded commands joined in ``data`` with the rest of this tick."""
        self._buffer.append(data)
        self.unflushed += count
        if self._handle is None:
            self._handle = self._loop.call_soon(self._flush)

    def hold(self) -> None:
        """Write nothing more of what is queued (it stays counted in :attr:`unflushed`)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def withdraw(self) -> int:
        """Drop every queued command, never to be written; how many there were."""
        self.hold()
        count, self.unflushed = self.unflushed, 0
        self._buffer.clear()
        return count

    def _flush(self) -> None:
        self._handle = None
        transport = self.transport
        if self._buffer and transport is not None and not transport.is_closing():
            data = b"".join(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
            self._buffer.clear()
            transport.write(data)
            if transport.is_closing():  # the kernel refused the write: asyncio closed at once
                return
            self.stats.commands += self.unflushed  # once per write, not per command
            self.unflushed = 0
