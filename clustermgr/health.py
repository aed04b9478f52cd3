"""Which nodes are down, as far as one pool knows: reports turned into NodeDown/NodeUp.

Used by the cluster pool (slot map health, failed queries, refused connections)
and by the sentinel follower (``+sdown``/``-sdown``). It runs when a node
fails or a map arrives, never per command.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .events import Event, NodeDown, NodeUp

__all__ = ["NodeHealth", "NodeView"]

Address = tuple[str, int]


class NodeView(Protocol):
    """A node as a topology view describes it (e.g. a cluster ``NodeInfo``)."""

    @property
    def address(self) -> Address:
        """``(host, port)``."""

    @property
    def health(self) -> str:
        """The view's own word for the node's state (``online``, ``failed``, ``loading``)."""

    @property
    def is_healthy(self) -> bool:
        """True if the view says the node serves."""


class NodeHealth:
    """Which nodes are down; each NodeDown is followed by at most one NodeUp."""

    def __init__(self) -> None:
        self._down: dict[Address, str] = {}

    @property
    def down(self) -> frozenset[Address]:
        """Nodes reported down and not seen up since."""
        return frozenset(self._down)

    def report(self, address: Address, up: bool, reason: str) -> Event | None:
        """Record a node's state; returns NodeDown/NodeUp when it changed."""
        if up:
            if self._down.pop(address, None) is None:
                return None
            return NodeUp(address, reason)
        if address in self._down:
            return None
        self._down[address] = reason
        return NodeDown(address, reason)

    def from_nodes(self, nodes: Iterable[NodeView]) -> list[Event]:
        """Reports from a view's health fields (CLUSTER SHARDS: online, failed, loading)."""
        events: list[Event] = []
        for node in nodes:
            if node.health == "loading":
                continue
            event = self.report(node.address, node.is_healthy, f"slot map says {node.health}")
            if event is not None:
                events.append(event)
        return events
