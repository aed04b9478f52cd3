"""A fault-injecting TCP proxy on 127.0.0.1 in front of one server.

Route a client through :attr:`FaultProxy.address` (or :attr:`FaultProxy.url`)
instead of the server's own address, then break the path between them::

    with FaultProxy(server.address) as proxy:
        pool = await create_pool(proxy.address)
        proxy.stall()            # half-open: connections stay up, nothing moves
        proxy.pass_through()     # held bytes are delivered, in order
        proxy.drop()             # every current connection is reset
        proxy.refuse()           # new connections are reset at once
        proxy.set_latency(0.05)  # each chunk is delivered 50 ms late
        proxy.cut("to_client")   # replies held, commands still delivered

Semantics follow TCP: bytes are never discarded in the middle of a stream.
A stalled or cut direction *holds* its bytes (reading stops, so the kernel
buffers fill as on a real partition); they are delivered when the path heals
(:meth:`~FaultProxy.pass_through` / :meth:`~FaultProxy.heal`) or thrown away
together with the connection by :meth:`~FaultProxy.drop`.  Faults apply to
current and new connections alike.

**Threading.** The proxy runs its own asyncio event loop in a daemon thread,
so it keeps forwarding while the test's loop is busy and can be used from
synchronous tests too.  The control methods are thread-safe and synchronous:
they hand the change to the proxy's loop and return once it is applied
(well under a millisecond), so they may also be called from coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Literal, TypeVar

from .process import find_free_port

__all__ = ["DIRECTIONS", "Direction", "FaultProxy"]

Direction = Literal["to_server", "to_client"]
DIRECTIONS: tuple[Direction, Direction] = ("to_server", "to_client")
_HOST = "127.0.0.1"
_CHUNK = 65536
_CONTROL_TIMEOUT = 10.0
_T = TypeVar("_T")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), like a crashed peer or a dropped path."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One proxied client connection: the client side, the server side, two pumps."""

    def __init__(
        self, proxy: FaultProxy, client: asyncio.StreamWriter, server: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False

    def close(self, reset: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.server):
            if reset:
                _reset(writer)
            else:
                writer.close()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 that can drop, stall, delay or cut connections.

    Args:
        target: ``(host, port)`` of the server to forward to.  It can be
            changed later with :meth:`retarget` (existing connections keep
            their server).
        port: port to listen on (default: a free one).
        name: label for ``repr``.
    """

    def __init__(
        self, target: tuple[str, int], *, port: int | None = None, name: str = "proxy"
    ) -> None:
        self.target = target
        self.name = name
        self._port = port if port is not None else find_free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._flow: dict[str, asyncio.Event] = {}
        self._latency = 0.0
        self._refusing = False
        #: Connections accepted / reset at once because of :meth:`refuse` / dropped.
        self.accepted = 0
        self.refused = 0
        self.dropped = 0
        #: Bytes delivered in each direction.
        self.bytes_forwarded: dict[str, int] = {d: 0 for d in DIRECTIONS}

    # -- addresses ---------------------------------------------------------------

    @property
    def host(self) -> str:
        """Always ``"127.0.0.1"``."""
        return _HOST

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` to give a client instead of the server's address."""
        return (_HOST, self._port)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port`` (no credentials)."""
        return f"redis://{_HOST}:{self._port}"

    @property
    def connections(self) -> int:
        """Proxied connections open now."""
        return len(self._links)

    @property
    def latency(self) -> float:
        """Delay added to every chunk, in seconds."""
        return self._latency

    @property
    def state(self) -> str:
        """A short description of the active faults (``"pass"`` when none)."""
        parts = [d for d in DIRECTIONS if d in self._flow and not self._flow[d].is_set()]
        faults = []
        if len(parts) == 2:
            faults.append("stalled")
        elif parts:
            faults.append(f"cut {parts[0]}")
        if self._latency:
            faults.append(f"latency={self._latency * 1000:.0f}ms")
        if self._refusing:
            faults.append("refusing")
        return ",".join(faults) or "pass"

    def __repr__(self) -> str:
        running = "running" if self._thread is not None else "stopped"
        return (
            f"<FaultProxy {self.name} {_HOST}:{self._port} -> {self.target[0]}:{self.target[1]} "
            f"{self.state} conns={len(self._links)} {running}>"
        )

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Start listening (in the proxy's own thread); returns ``self``."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready: list[BaseException | None] = []
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:
                ready.append(exc)
                started.set()
                return
            ready.append(None)
            started.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"clustermgr-{self.name}", daemon=True)
        self._thread.start()
        if not started.wait(_CONTROL_TIMEOUT) or ready[0] is not None:
            error = ready[0] if ready else None
            self._stop_thread()
            raise RuntimeError(f"{self.name} could not listen on {_HOST}:{self._port}") from error
        return self

    async def _listen(self) -> None:
        self._flow = {d: asyncio.Event() for d in DIRECTIONS}
        for event in self._flow.values():
            event.set()
        self._server = await asyncio.start_server(self._accept, _HOST, self._port)

    def close(self) -> None:
        """Stop listening, reset every connection and stop the thread (idempotent)."""
        if self._thread is None:
            return
        with contextlib.suppress(RuntimeError, TimeoutError):
            self._run(self._shutdown())
        self._stop_thread()

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
            thread.join(_CONTROL_TIMEOUT)
            if not thread.is_alive():
                loop.close()
        self._loop = None
        self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for link in list(self._links):
            link.close(reset=True)
        pending = [t for link in self._links for t in link.tasks] + list(self._handlers)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._links.clear()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- control (thread-safe) -------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        loop = self._loop
        if loop is None or self._thread is None:
            coro.close()
            raise RuntimeError(f"{self!r} is not started")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("FaultProxy control methods cannot run on the proxy's own thread")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(_CONTROL_TIMEOUT)

    def _call(self, fn: Callable[[], _T]) -> _T:
        async def apply() -> _T:
            return fn()

        return self._run(apply())

    def pass_through(self) -> None:
        """Clear every fault: accept, no latency, both directions flowing.

        Bytes held by a stall or cut are delivered now, in order.
        """

        def apply() -> None:
            self._refusing = False
            self._latency = 0.0
            for event in self._flow.values():
                event.set()

        self._call(apply)

    def heal(self) -> None:
        """Alias of :meth:`pass_through`."""
        self.pass_through()

    def stall(self) -> None:
        """Half-open every connection, current and new: stay connected, forward nothing."""

        def apply() -> None:
            for event in self._flow.values():
                event.clear()

        self._call(apply)

    def cut(self, direction: Direction) -> None:
        """Hold one direction (``"to_server"`` or ``"to_client"``); the other keeps flowing."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self._call(self._flow[direction].clear)

    def resume(self, direction: Direction | None = None) -> None:
        """Let ``direction`` (default: both) flow again, delivering what was held."""
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        targets = DIRECTIONS if direction is None else (direction,)

        def apply() -> None:
            for name in targets:
                self._flow[name].set()

        self._call(apply)

    def set_latency(self, seconds: float) -> None:
        """Deliver every chunk ``seconds`` after it was read (both directions; 0 = off)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")

        def apply() -> None:
            self._latency = float(seconds)

        self._call(apply)

    def refuse(self, on: bool = True) -> None:
        """Reset new connections as soon as they are accepted (``on=False`` to stop)."""

        def apply() -> None:
            self._refusing = on

        self._call(apply)

    def drop(self, *, refuse: bool = False) -> int:
        """Reset (RST) every current connection; returns how many were dropped.

        With ``refuse=True`` new connections are reset too until
        :meth:`pass_through` or ``refuse(False)``.
        """

        def apply() -> int:
            if refuse:
                self._refusing = True
            links = list(self._links)
            for link in links:
                link.close(reset=True)
                self._links.discard(link)
            self.dropped += len(links)
            return len(links)

        return self._call(apply)

    def retarget(self, target: tuple[str, int]) -> None:
        """Forward new connections to ``target`` (current ones are kept)."""

        def apply() -> None:
            self.target = target

        self._call(apply)

    @contextlib.contextmanager
    def stalled(self) -> Iterator[FaultProxy]:
        """``with proxy.stalled():`` -- stall inside the block, heal after it."""
        self.stall()
        try:
            yield self
        finally:
            self.pass_through()

    @contextlib.contextmanager
    def cut_off(self, direction: Direction) -> Iterator[FaultProxy]:
        """``with proxy.cut_off("to_client"):`` -- one direction held inside the block."""
        self.cut(direction)
        try:
            yield self
        finally:
            self.resume(direction)

    @contextlib.contextmanager
    def delayed(self, seconds: float) -> Iterator[FaultProxy]:
        """``with proxy.delayed(0.1):`` -- added latency inside the block."""
        previous = self._latency
        self.set_latency(seconds)
        try:
            yield self
        finally:
            self.set_latency(previous)

    # -- the data path (proxy thread) -----------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refusing:
            self.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.target), _CONTROL_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError):
            _reset(writer)  # the server is down: the client sees the connection reset
            return
        except asyncio.CancelledError:
            _reset(writer)
            raise
        link = _Link(self, writer, up_writer)
        if self._server is None:  # closed meanwhile
            link.close(reset=True)
            return
        self._links.add(link)
        link.tasks = [
            asyncio.ensure_future(self._pump(link, reader, up_writer, "to_server")),
            asyncio.ensure_future(self._pump(link, up_reader, writer, "to_client")),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        link.close(reset=False)
        self._links.discard(link)

    async def _pump(
        self,
        link: _Link,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        flow = self._flow[direction]
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    return
                due, data = item
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await flow.wait()
                if link.closed:
                    return
                # Count first: the proxy runs on its own thread, and a client may
                # read the counter as soon as the bytes reach it.
                self.bytes_forwarded[direction] += len(data)
                dst.write(data)
                await dst.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while not link.closed:
                await flow.wait()
                try:
                    data = await src.read(_CHUNK)
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    break
                queue.put_nowait((loop.time() + self._latency, data))
            queue.put_nowait(None)
            with contextlib.suppress(ConnectionError, OSError):
                await sender
        finally:
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(BaseException):
                    await sender
            # One side ended: end the other too (Redis does not half-close).
            link.close(reset=False)
