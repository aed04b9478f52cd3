"""Pool-wide state changes of a :class:`~clustermgr.pool.ConnectionsPool`.

``SELECT`` and ``AUTH`` go to every free connection at once; the pool's known
state (its db, its credentials, through the :class:`PoolConnector`) follows
only what the server accepted. A change, once started, runs to the end even
if its caller is cancelled: cut short, it would leave some connections
switched and the pool's known state not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .connset import ConnectionSet
from .errors import ReplyError
from .poolconnect import PoolConnector
from .tasks import consume

__all__ = ["PoolState"]


class PoolState:
    """The db and credentials of one pool's connections, changed pool-wide."""

    def __init__(
        self, db: int, conns: ConnectionSet, connector: PoolConnector,
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
    ) -> None:
        #: The db every shared connection is on.
        self.db = db
        self._conns = conns
        self._connector = connector
        self._spawn = spawn

    async def select(self, db: int) -> bool:
        """Switch every free connection to ``db`` (see ``ConnectionsPool.select``)."""
        return await self._run_to_completion(self._select(db))

    async def auth(self, password: str, username: str | None) -> bool:
        """Authenticate every free connection (see ``ConnectionsPool.auth``)."""
        return await self._run_to_completion(self._auth(password, username))

    async def reauthenticate(self) -> bool:
        """``auth`` with the credential provider's answer (else the pool's own credentials)."""
        credentials = await self._connector.current_credentials()
        if credentials is None:
            return True
        username, password = credentials
        return await self.auth(password, username)

    async def _select(self, db: int) -> bool:
        results, conns = await self._conns.on_free(b"SELECT", db)
        refused = next((r for r in results if isinstance(r, ReplyError)), None)
        if refused is None:
            self.db = db
            self._connector.switched_db(db)
        free = self._conns.free
        for conn in conns:  # never share a connection on another db than the pool's
            if conn.db != self.db and conn in free:
                free.remove(conn)
                self._conns.discard(conn)
        if refused is not None:
            raise refused
        return True

    async def _auth(self, password: str, username: str | None) -> bool:
        results, _ = await self._conns.on_free(
            b"AUTH", *((username, password) if username else (password,))
        )
        refused = next((r for r in results if isinstance(r, ReplyError)), None)
        if refused is not None:
            raise refused
        self._connector.switched_credentials(username, password)
        return True

    async def _run_to_completion(self, coro: Awaitable[bool]) -> bool:
        """Await ``coro`` in a task of the pool: cancelling the caller does not stop it."""
        task = self._spawn(coro)
        task.add_done_callback(consume)  # reported to the caller, if it is still there
        return await asyncio.shield(task)
