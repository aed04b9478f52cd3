"""Which nodes refuse commands with CLUSTERDOWN, and the wait of the commands they refused.

A ``CLUSTERDOWN`` reply says the cluster state is fail on the node that sent
it; a ``CLUSTER INFO`` from that same node saying ``cluster_state:ok`` ends
it. While commands wait, each poll of the map also asks every refusing node
its ``CLUSTER INFO`` (:meth:`ClusterState.refusing`). A command held after
CLUSTERDOWN waits for :meth:`ClusterState.turned_ok` of its node: one future
shared by every command held on that node, done at the first answer of that
node saying ok, instead of a timer per command. Another node's ok is not
enough: after a failover the promoted replica says ok first and the other
masters tens of milliseconds later, once the news reached them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container

from .topology import Address

__all__ = ["ClusterState"]


class ClusterState:
    """The nodes that refused with CLUSTERDOWN, until each says ok (see module doc)."""

    __slots__ = ("_refusing",)

    def __init__(self) -> None:
        self._refusing: dict[Address, asyncio.Future[None]] = {}

    @property
    def refusing(self) -> list[Address]:
        """The nodes whose last word was CLUSTERDOWN (or a ``cluster_state:fail``)."""
        return list(self._refusing)

    def refused(self, address: Address) -> None:
        """``address`` replied CLUSTERDOWN."""
        if address not in self._refusing:
            self._refusing[address] = asyncio.get_running_loop().create_future()

    def seen(self, address: Address, ok: bool) -> None:
        """``address`` answered ``CLUSTER INFO`` with ``cluster_state:ok`` (or fail)."""
        if ok:
            _release(self._refusing.pop(address, None))

    def keep_only(self, addresses: Container[Address]) -> None:
        """Forget the refusing nodes not in ``addresses`` (they left the map): their
        held commands wake and look again."""
        for address in [a for a in self._refusing if a not in addresses]:
            _release(self._refusing.pop(address))

    def turned_ok(self, address: Address) -> asyncio.Future[None]:
        """A future done once ``address`` says ok (already done unless it refused).

        Shared by every command held on ``address``: wait on it, never cancel it."""
        waiter = self._refusing.get(address)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            waiter.set_result(None)
        return waiter

    def close(self) -> None:
        """End every wait (the pool is closing)."""
        refusing, self._refusing = self._refusing, {}
        for waiter in refusing.values():
            _release(waiter)


def _release(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
