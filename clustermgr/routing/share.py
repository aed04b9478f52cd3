"""What a routed pool shares with its node pools, and sums over them.

Every node pool gets the router's event bus and each latency histogram
listener enabled so far (:meth:`NodeShare.adopt`); the router's sizes and
node stats are sums over the node pools in use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..events import EventBus
from ..pool import ConnectionsPool
from ..stats import NodeStats

__all__ = ["NodeShare"]

Listener = Callable[[Any, float], None]


class NodeShare:
    """Events and latency settings for node pools; sums over ``serving()``."""

    def __init__(self, events: EventBus, serving: Callable[[], Iterable[ConnectionsPool]]) -> None:
        self._events = events
        self._serving = serving
        self._histograms: list[Listener | None] | None = None

    def adopt(self, pool: ConnectionsPool) -> None:
        """Share the event bus and latency settings with a new node pool."""
        pool.events = self._events
        for listener in self._histograms or ():
            pool.enable_latency_histogram(listener)

    def enable_latency_histogram(self, listener: Listener | None) -> None:
        """Time every command on every node pool, now and later."""
        if self._histograms is None:
            self._histograms = []
        self._histograms.append(listener)
        for pool in self._serving():
            pool.enable_latency_histogram(listener)

    def size(self) -> int:
        """Connections open, summed over the node pools in use."""
        return sum(p.size for p in self._serving())

    def freesize(self) -> int:
        """Connections not acquired, summed over the node pools in use."""
        return sum(p.freesize for p in self._serving())

    def node_stats(self) -> Sequence[NodeStats]:
        """Each node pool's stats now."""
        return [pool.node_stats() for pool in self._serving()]
