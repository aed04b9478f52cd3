"""Opening the pool of one cluster node: the user's pool class, READONLY, the overdue watch."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..connection import RedisConnection
from ..pool import ConnectionsPool
from ..stall import Overdue
from .topology import Address

__all__ = ["NodePoolFactory", "overdue_after"]

# Least seconds of silence, replies owed, before a node's replies are overdue.
_OVERDUE_LEAST = 0.5


def overdue_after(hold_interval: float, read_timeout: float) -> float:
    """Seconds of silence, replies owed, after which a node's replies are overdue
    and the map is polled: ``min(max(hold_interval, 0.5), read_timeout / 4)``
    (0.5 s by default: slower than most commands, well before a failover ends)."""
    return min(max(hold_interval, _OVERDUE_LEAST), read_timeout / 4)


async def _send_readonly(conn: RedisConnection) -> None:
    await conn.execute(b"READONLY", encoding=None)


class NodePoolFactory:
    """Makes the pool of one node (the ``create`` of :class:`~.nodes.NodePools`).

    ``pool_kwargs`` is the cluster pool's own dict of node pool options, read
    at each call (``auth()`` updates its credentials); ``adopt(pool)`` shares
    the cluster pool's events and latency settings; ``overdue(address)`` is
    called when a node's replies are late (with a ``read_timeout`` only).
    Connections run READONLY first unless every read goes to the masters.
    """

    __slots__ = ("_adopt", "_hold_interval", "_on_connect", "_overdue", "_pool_cls",
                 "_pool_kwargs")

    def __init__(
        self,
        pool_cls: type[ConnectionsPool],
        pool_kwargs: dict[str, Any],
        *,
        read_from: str,
        hold_interval: float,
        adopt: Callable[[ConnectionsPool], None],
        overdue: Callable[[Address], None],
    ) -> None:
        self._pool_cls = pool_cls
        self._pool_kwargs = pool_kwargs
        self._on_connect = _send_readonly if read_from != "master" else None
        self._hold_interval = hold_interval
        self._adopt = adopt
        self._overdue = overdue

    def __call__(self, address: Address) -> ConnectionsPool:
        """A new pool for the node at ``address``."""
        read_timeout = self._pool_kwargs.get("read_timeout")
        overdue = None if read_timeout is None else Overdue(
            overdue_after(self._hold_interval, read_timeout),
            functools.partial(self._overdue, address),
        )
        pool = self._pool_cls(
            address, on_connect=self._on_connect, overdue=overdue, **self._pool_kwargs
        )
        self._adopt(pool)
        return pool
