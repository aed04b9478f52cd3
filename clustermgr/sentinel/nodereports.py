"""Data nodes up and down as the sentinels report them (``+sdown``, ``-sdown``, ...)."""

from __future__ import annotations

from ..events import EventBus
from ..health import NodeHealth
from ._common import address_text, logger
from .events import SentinelEvent

__all__ = ["NodeReports"]

#: Events that say a data node is down (+sdown) or answering again (the others).
_NODE_EVENTS = frozenset({"+sdown", "-sdown", "+reboot", "+convert-to-slave", "+slave"})


class NodeReports:
    """Sentinel events about one service's nodes turned into NodeDown/NodeUp on ``events``."""

    __slots__ = ("_events", "_health", "_service")

    def __init__(self, service: str, events: EventBus) -> None:
        self._service = service
        self._events = events
        self._health = NodeHealth()

    def heard(self, event: SentinelEvent) -> None:
        """Record ``event`` if it says a master or replica went down or answers again."""
        if event.kind not in _NODE_EVENTS or event.address is None or (
            event.instance_type not in ("master", "slave", "replica")
        ):
            return
        reason = f"{event.kind} {event.instance_type} from sentinel {address_text(event.source)}"
        change = self._health.report(event.address, event.kind != "+sdown", reason)
        if change is None:
            return
        logger.info("%s, service %r", change.describe(), self._service)
        if self._events.active:
            self._events.emit(change)
