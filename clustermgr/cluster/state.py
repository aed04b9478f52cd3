"""The cluster state as a pool last saw it, and the wait of CLUSTERDOWN-held commands.

A ``CLUSTERDOWN`` reply says the cluster state is fail (on the node that sent
it); every ``CLUSTER INFO`` the pool reads (each poll's probe, each read of
the map) says fail or ok. A command held after CLUSTERDOWN waits for
:meth:`ClusterState.turned_ok`: one future shared by every held command,
done at the first answer saying ok -- the poll's probe, before any map is
read -- instead of a timer per command.
"""

from __future__ import annotations

import asyncio

__all__ = ["ClusterState"]


class ClusterState:
    """Whether the cluster accepts commands, as last seen (see module doc)."""

    __slots__ = ("_waiter", "ok")

    def __init__(self) -> None:
        #: The last answer said ok (True until one says fail).
        self.ok = True
        self._waiter: asyncio.Future[None] | None = None  # pending only while not ok

    def seen(self, ok: bool) -> None:
        """A node's answer said the state is ok (``cluster_state:ok``) or fail."""
        self.ok = ok
        if ok:
            self._release()

    def turned_ok(self) -> asyncio.Future[None]:
        """A future done once an answer says ok (already done while the state is ok).

        Shared by every waiting command: wait on it, never cancel it."""
        waiter = self._waiter
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            if self.ok:
                waiter.set_result(None)
            else:
                self._waiter = waiter
        return waiter

    def close(self) -> None:
        """End every wait (the pool is closing)."""
        self._release()

    def _release(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
