"""The interfaces every connection manager implements.

These are the aioredis 1.x abstract classes (``AbcConnection``, ``AbcPool``,
``AbcChannel``), typed and documented. Code written against them works on one
server, a Redis Cluster or a Sentinel-managed master alike.

To write your own connection manager, subclass :class:`AbcPool` and implement
the abstract members; the non-abstract ones have working defaults:

* ``execute`` must return an awaitable at once (do not wait for earlier
  replies), raise synchronously for bad input, and fail the awaitable with a
  :class:`~clustermgr.errors.RedisError` otherwise.
* ``get_connection(command, args)`` picks, without waiting, a connection that
  may run ``command`` with ``args`` (routing pools use the key in ``args``) or
  returns ``None``; ``acquire`` is its waiting, exclusive counterpart and
  ``release`` gives the connection back.
* ``close`` starts closing; ``wait_closed`` waits until every socket is shut.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Mapping, Sequence
from types import TracebackType
from typing import Any

__all__ = [
    "AbcChannel",
    "AbcConnection",
    "AbcPool",
    "ConnectionContext",
]


class AbcConnection(abc.ABC):
    """Abstract connection interface: one server, or a pool behaving like one."""

    @abc.abstractmethod
    def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Send a command; return an awaitable of its reply without waiting."""

    @abc.abstractmethod
    def execute_pubsub(self, command: bytes | str, *channels: Any) -> Awaitable[Any]:
        """Run (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE for ``channels``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Start closing the connection(s) and releasing resources."""

    @abc.abstractmethod
    async def wait_closed(self) -> None:
        """Wait until everything :meth:`close` started has finished."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True when the connection is closing or closed."""

    @property
    @abc.abstractmethod
    def db(self) -> int:
        """The selected database index."""

    @property
    @abc.abstractmethod
    def encoding(self) -> str | None:
        """Codec used to decode replies by default, or ``None`` for bytes."""

    @property
    @abc.abstractmethod
    def in_pubsub(self) -> int:
        """Number of subscribed channels and patterns (truthy in pub/sub mode)."""

    @property
    @abc.abstractmethod
    def pubsub_channels(self) -> Mapping[bytes, AbcChannel]:
        """Read-only mapping of subscribed channel names to channels."""

    @property
    @abc.abstractmethod
    def pubsub_patterns(self) -> Mapping[bytes, AbcChannel]:
        """Read-only mapping of subscribed patterns to channels."""

    @property
    @abc.abstractmethod
    def address(self) -> Any:
        """Address of the server: ``(host, port)`` or a unix socket path."""


class AbcPool(AbcConnection):
    """Abstract pool interface.

    A pool is also an :class:`AbcConnection` (its ``execute`` borrows a
    connection for one command), and hands out exclusive connections for
    transactions and blocking commands.
    """

    @property
    @abc.abstractmethod
    def address(self) -> Any:
        """Address of the single server behind the pool, or ``None``."""

    @abc.abstractmethod
    def get_connection(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection | None:
        """Return a free connection able to run ``command args`` now, or ``None``."""

    @abc.abstractmethod
    async def acquire(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection:
        """Wait for a connection for exclusive use (give it back with :meth:`release`)."""

    @abc.abstractmethod
    def release(self, conn: AbcConnection) -> None:
        """Give back a connection obtained from :meth:`acquire`."""

    def get(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> ConnectionContext:
        """``async with pool.get() as conn:`` — acquire and always release."""
        return ConnectionContext(self, command, args)

    def __await__(self) -> Any:
        """``with await pool as conn:`` — the aioredis 1.x idiom."""
        conn = yield from self.acquire().__await__()
        return _SyncConnectionContext(self, conn)

    def __enter__(self) -> None:
        """``with pool:`` (no ``await``) is a mistake: raise, as aioredis 1.x does."""
        raise RuntimeError("use 'with await pool as conn:' or 'async with pool.get() as conn:'")

    def __exit__(self, *exc: object) -> None:
        """Never reached: :meth:`__enter__` raises."""


class ConnectionContext:
    """Async context manager that acquires a connection and releases it."""

    __slots__ = ("_args", "_command", "_conn", "_pool")

    def __init__(
        self, pool: AbcPool, command: bytes | str | None, args: Sequence[Any]
    ) -> None:
        self._pool = pool
        self._command = command
        self._args = args
        self._conn: AbcConnection | None = None

    async def __aenter__(self) -> AbcConnection:
        self._conn = await self._pool.acquire(self._command, self._args)
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)


class _SyncConnectionContext:
    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: AbcPool, conn: AbcConnection) -> None:
        self._pool = pool
        self._conn = conn

    def __enter__(self) -> AbcConnection:
        return self._conn

    def __exit__(self, *exc: object) -> None:
        self._pool.release(self._conn)


class AbcChannel(abc.ABC):
    """Abstract pub/sub channel interface."""

    @property
    @abc.abstractmethod
    def name(self) -> bytes:
        """Encoded channel name or pattern."""

    @property
    @abc.abstractmethod
    def is_pattern(self) -> bool:
        """True for a pattern (PSUBSCRIBE) channel."""

    @property
    @abc.abstractmethod
    def is_active(self) -> bool:
        """True while the channel is open or still holds unread messages."""

    @abc.abstractmethod
    def put_nowait(self, data: Any) -> None:
        """Deliver one message (``(channel, message)`` for patterns)."""

    @abc.abstractmethod
    def close(self, exc: BaseException | None = None) -> None:
        """Mark the channel closed: no more messages will be put."""

