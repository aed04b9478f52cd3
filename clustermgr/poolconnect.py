"""How a :class:`~clustermgr.pool.ConnectionsPool` opens its connections.

:class:`PoolConnector` holds the pool's address (its db and credentials follow
``select``/``auth`` and the credential provider) and the state a connection
must be in to be shared (:class:`~clustermgr.handback.KnownState`). It opens a
connection with the pool's options (TLS, parser, bounds, the provider's
credentials), runs ``on_connect`` within the same connect bound, and, for
commands, keeps the connect backoff gate (:mod:`clustermgr.connectgate`): after
a failed connect, further ones fail fast for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ._timeout import timeout as _timeout
from .address import ServerAddress, address_text
from .connectgate import CONNECT_BACKOFF, ConnectGate
from .connection import RedisConnection, create_connection
from .credentials import CredentialProvider, get_credentials
from .errors import ConnectError, PoolClosedError, TimeoutError
from .handback import KnownState
from .stall import Overdue
from .stats import Counters

__all__ = ["OnConnect", "PoolConnector"]

OnConnect = Callable[[RedisConnection], Awaitable[None]]


class PoolConnector:
    """Opens one pool's connections (see the module docstring)."""

    def __init__(
        self,
        address: ServerAddress,
        *,
        ssl: Any,
        parser: Any,
        connection_cls: type[RedisConnection] | None,
        read_timeout: float | None,
        provider: CredentialProvider | None,
        max_reply_size: int | None,
        on_connect: OnConnect | None,
        counters: Counters,
        closing: Callable[[], bool],
        overdue: Overdue | None = None,
    ) -> None:
        #: The pool's address; its db and credentials are the pool's.
        self.address = address
        self._ssl = ssl
        self._parser = parser
        self._connection_cls = connection_cls
        self._read_timeout = read_timeout
        self._provider = provider
        self._max_reply_size = max_reply_size
        self._on_connect = on_connect
        self._counters = counters
        self._closing = closing
        self._overdue = overdue
        #: The state a connection is in when shared (db, credentials, READONLY).
        self.known = KnownState(db=address.db or 0, credentials=self._credentials())
        # Failed connects open a window in which further ones fail fast (all commands).
        self._gate = ConnectGate(CONNECT_BACKOFF, time.monotonic)

    @property
    def text(self) -> str:
        """The address, for messages (no secret)."""
        return address_text(self.address.target)

    def _credentials(self) -> tuple[str | None, str] | None:
        address = self.address
        return (address.username, address.password) if address.password else None

    async def create(self) -> RedisConnection:
        """A new connection, set up (``on_connect``) within the connect bound."""
        loop = asyncio.get_running_loop()
        bound = self.address.timeout  # connect, handshake and on_connect together
        deadline = None if bound is None else loop.time() + bound
        conn = await create_connection(
            self.address, ssl=self._ssl, parser=self._parser, timeout=bound,
            connection_cls=self._connection_cls, read_timeout=self._read_timeout,
            credential_provider=self._provider, max_reply_size=self._max_reply_size,
        )
        if self._provider is not None:
            self._adopt_credentials(conn.state.credentials)
        try:
            if self._on_connect is not None:
                try:
                    async with _timeout(None if deadline is None else deadline - loop.time()):
                        await self._on_connect(conn)
                except asyncio.TimeoutError as exc:
                    raise TimeoutError(f"setting up a connection to {self.text} "
                                       f"timed out after {bound}s") from exc
        except BaseException:
            conn.close()
            await conn.wait_closed()
            raise
        if self._closing():
            conn.close()
            await conn.wait_closed()
            raise PoolClosedError(f"pool for {self.text} was closed")
        # What on_connect set up (READONLY on a cluster replica) is the known state.
        self.known = replace(self.known, readonly=conn.state.readonly)
        conn.stats = self._counters
        if self._overdue is not None:
            conn.watch_overdue(self._overdue)
        self._counters.connects += 1
        return conn

    async def create_gated(self) -> RedisConnection:
        """:meth:`create` for commands: within the connect backoff window after a
        failed connect, fail fast (see :mod:`clustermgr.connectgate`). The pub/sub
        link reconnects on a backoff of its own, ungated."""
        gate = self._gate
        gate.check()
        try:
            conn = await self.create()
        except ConnectError as exc:
            gate.failed(exc)
            raise
        gate.succeeded()
        return conn

    def _adopt_credentials(self, credentials: tuple[str | None, str] | None) -> None:
        """The provider's newest answer becomes the pool's: released connections follow."""
        if credentials is not None and credentials != self.known.credentials:
            self.address = replace(self.address, username=credentials[0], password=credentials[1])
            self.known = replace(self.known, credentials=credentials)

    def switched_db(self, db: int) -> None:
        """Every connection was switched to ``db`` (SELECT): new ones open there too."""
        self.address = replace(self.address, db=db)
        self.known = replace(self.known, db=db)

    def switched_credentials(self, username: str | None, password: str) -> None:
        """Every connection authenticated anew (AUTH): new ones use these credentials."""
        self.address = replace(self.address, username=username, password=password)
        self.known = replace(self.known, credentials=self._credentials())

    async def current_credentials(self) -> tuple[str | None, str] | None:
        """The credentials to authenticate with now: the provider's answer, else the pool's."""
        if self._provider is not None:
            return await get_credentials(self._provider, self.address.timeout)
        return self._credentials()
