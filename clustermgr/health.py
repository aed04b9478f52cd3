"""Which nodes are down, as far as one pool knows: reports turned into NodeDown/NodeUp.

Used by the cluster pool (slot map health, failed queries, refused connections)
and by the sentinel follower (``+sdown``/``-sdown``). It runs when a node
fails or a map arrives, never per command.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .events import Event, NodeDown, NodeUp

__all__ = ["NodeHealth", "NodeView", "describe_failure"]

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


def describe_failure(error: BaseException) -> str:
    """A failure as a reason that is never empty (``TimeoutError()`` has no message)."""
    text = str(error)
    return text if text else type(error).__name__


class NodeHealth:
    """Which nodes are down; each NodeDown is followed by at most one NodeUp.

    A node is up when it answers: a view saying a node serves is no proof
    (it may not have noticed the node died yet), so :meth:`from_nodes` only
    reports nodes down; :meth:`suspects` names the nodes to ask directly.
    """

    def __init__(self) -> None:
        self._down: dict[Address, str] = {}

    @property
    def down(self) -> frozenset[Address]:
        """Nodes reported down and not seen up since."""
        return frozenset(self._down)

    def report(self, address: Address, up: bool, reason: str) -> Event | None:
        """Record a node's state; returns NodeDown/NodeUp when it changed.

        ``reason`` says how the node was seen (an empty one is refused).
        """
        if not reason:
            raise ValueError("a node health report needs a reason")
        if up:
            if self._down.pop(address, None) is None:
                return None
            return NodeUp(address, reason)
        if address in self._down:
            return None
        self._down[address] = reason
        return NodeDown(address, reason)

    def from_nodes(self, nodes: Iterable[NodeView]) -> list[Event]:
        """NodeDown for the nodes a view reports failed (CLUSTER SHARDS ``health``)."""
        events: list[Event] = []
        for node in nodes:
            if node.health == "loading" or node.is_healthy:
                continue
            event = self.report(node.address, False, f"slot map says {node.health}")
            if event is not None:
                events.append(event)
        return events

    def suspects(self, nodes: Iterable[NodeView]) -> list[Address]:
        """Nodes down here that a view reports serving: ask them whether they answer."""
        down = self._down
        return [n.address for n in nodes if n.is_healthy and n.address in down]
