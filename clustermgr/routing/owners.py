"""Which node pool each connection a routed pool handed out came from."""

from __future__ import annotations

from ..abc import AbcConnection
from ..errors import ArgumentError
from ..pool import ConnectionsPool

__all__ = ["Lent"]


class Lent:
    """Connections acquired through a routed pool, each with its node pool."""

    def __init__(self, owner: object) -> None:
        self._owner = owner
        self._pools: dict[AbcConnection, ConnectionsPool] = {}

    def add(self, conn: AbcConnection, pool: ConnectionsPool) -> None:
        """``conn`` was acquired from ``pool``."""
        self._pools[conn] = pool

    def release(self, conn: AbcConnection) -> None:
        """Give ``conn`` back to its pool (closed instead if that pool is closed)."""
        pool = self._pools.pop(conn, None)
        if pool is None:
            raise ArgumentError(f"{conn!r} was not acquired from {self._owner!r}")
        if pool.closed:
            conn.close()
            return
        pool.release(conn)
