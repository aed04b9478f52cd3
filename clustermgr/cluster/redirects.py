"""Following MOVED and ASK: the target's node pool, counted, announced, the route fixed."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import RedirectError
from ..events import EventBus, Redirect
from ..pool import ConnectionsPool
from ..remap import AddressRemap, remap_address
from .nodes import Routes
from .topology import Address

__all__ = ["Redirects"]


class Redirects:
    """Where a redirect sends a command, for one cluster pool.

    ``routes()`` is the pool's slot -> master table now (a MOVED fixes its
    slot's entry at once, before the reload it asks with ``trigger``);
    ``node_pool(address)`` the node pool for an address (opened if new);
    ``pools()`` the node pools in use. Announced addresses go through
    ``remap`` (an :class:`~clustermgr.remap.AddressRemapError` is not retried).
    """

    __slots__ = ("_events", "_node_pool", "_pools", "_remap", "_routes", "_trigger")

    def __init__(
        self,
        *,
        remap: AddressRemap | None,
        routes: Callable[[], Routes],
        node_pool: Callable[[Address], ConnectionsPool],
        pools: Callable[[], Mapping[Address, ConnectionsPool]],
        events: EventBus,
        trigger: Callable[[str], object],
    ) -> None:
        self._remap = remap
        self._routes = routes
        self._node_pool = node_pool
        self._pools = pools
        self._events = events
        self._trigger = trigger

    def follow(self, name: str, error: RedirectError, ask: bool) -> ConnectionsPool:
        """The node pool command ``name`` goes to after ``error`` (MOVED, or ASK if ``ask``)."""
        address = remap_address(self._remap, error.address)
        source = self._routes()[error.slot]
        if source is not None:
            source.counters.redirects += 1
        if self._events.active:
            origin = source.address if source is not None else None
            self._events.emit(Redirect(
                "ASK" if ask else "MOVED", error.slot,
                origin if isinstance(origin, tuple) else None, address, name,
            ))
        target = self._node_pool(address)
        if not ask:
            self._routes()[error.slot] = target
            self._trigger("moved")
        return target

    def known(self, address: Address) -> ConnectionsPool | None:
        """The node pool in use for an address a redirect announced (remapped as above)."""
        return self._pools().get(remap_address(self._remap, address))
