"""A scripted sentinel on 127.0.0.1: it says what the test tells it to, when told.

Real sentinels cannot be stopped at an exact moment of a failover; this one
answers ``SENTINEL MASTER`` / ``GET-MASTER-ADDR-BY-NAME`` from :attr:`view`,
``SENTINEL REPLICAS`` from :attr:`replicas` (healthy, link ok),
``SENTINEL SENTINELS`` with nothing, ``PSUBSCRIBE`` by keeping
the connection as an event subscriber, and publishes the events the test
passes to :meth:`publish`. The data nodes stay real redis-servers.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import hiredis


@dataclass
class MasterView:
    """What the fake says about the master (``SENTINEL MASTER``)."""

    address: tuple[str, int]
    flags: str = "master"
    config_epoch: int = 0


def _encode(value: Any) -> bytes:
    if value is None:
        return b"*-1\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    return b"*%d\r\n" % len(value) + b"".join(_encode(v) for v in value)


class FakeSentinel:
    """One scripted sentinel for the service ``service``."""

    def __init__(self, service: str, view: MasterView) -> None:
        self.service = service
        self.view = view
        #: Replicas listed by ``SENTINEL REPLICAS`` (each healthy, link up).
        self.replicas: list[tuple[str, int]] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self._subscribers: set[asyncio.StreamWriter] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def __aenter__(self) -> FakeSentinel:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.server.wait_closed()

    def publish(self, kind: str, payload: str) -> None:
        """Send one event to every subscriber."""
        message = _encode([b"pmessage", b"*", kind, payload])
        for writer in list(self._subscribers):
            writer.write(message)

    def publish_about_master(self, kind: str, extra: str = "") -> None:
        """An event about the master in the instance format (``master <name> <ip> <port>``)."""
        host, port = self.view.address
        self.publish(kind, f"master {self.service} {host} {port}{extra}")

    def drop_subscribers(self) -> None:
        """Close every event subscription (as a network blip would)."""
        for writer in list(self._subscribers):
            writer.transport.abort()

    def _reply(self, command: list[bytes]) -> bytes:
        name = command[0].upper()
        if name == b"PING":
            return b"+PONG\r\n"
        if name != b"SENTINEL" or len(command) < 2:
            return b"+OK\r\n"
        sub = command[1].upper()
        if len(command) > 2 and command[2].decode() != self.service:
            return b"-ERR No such master with that name\r\n"
        host, port = self.view.address
        if sub == b"MASTER":
            return _encode([
                "name", self.service, "ip", host, "port", str(port),
                "flags", self.view.flags, "config-epoch", str(self.view.config_epoch),
            ])
        if sub == b"GET-MASTER-ADDR-BY-NAME":
            return _encode([host, str(port)])
        if sub in (b"REPLICAS", b"SLAVES"):
            return _encode([
                ["ip", ip, "port", str(p), "flags", "slave", "master-link-status", "ok"]
                for ip, p in self.replicas
            ])
        if sub == b"SENTINELS":
            return _encode([])
        return b"+OK\r\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        parser = hiredis.Reader()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                parser.feed(data)
                while (command := parser.gets()) is not False:
                    if command[0].upper() == b"PSUBSCRIBE":
                        self._subscribers.add(writer)
                        writer.write(_encode([b"psubscribe", command[1], 1]))
                    else:
                        writer.write(self._reply(command))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._subscribers.discard(writer)
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
