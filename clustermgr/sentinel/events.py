"""Sentinel event messages, parsed.

Sentinels publish their decisions on pub/sub channels named after the event
(``+switch-master``, ``+sdown``, ``+failover-state-send-slaveof-noone``, ...).
Most payloads use the *instance format*::

    <instance-type> <name> <ip> <port> @ <master-name> <master-ip> <master-port>

(the ``@ ...`` part is absent when the instance is the master itself), and
``+switch-master`` uses ``<master-name> <old-ip> <old-port> <new-ip> <new-port>``.
:func:`parse_event` turns either form into a :class:`SentinelEvent`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..errors import ProtocolError
from ..protocol import excerpt

__all__ = [
    "FAILOVER_ABORT_PREFIX",
    "FAILOVER_START_EVENTS",
    "PROMOTION_EVENTS",
    "SentinelEvent",
    "parse_event",
    "remap_event",
]

Address = tuple[str, int]

#: Stages published (by the leading sentinel only) once a failover of a master
#: has started: from here on writes to the old master may be lost.
FAILOVER_START_EVENTS = frozenset({
    "+odown",
    "+try-failover",
    "+elected-leader",
    "+failover-state-select-slave",
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "+failover-state-wait-promotion",
    "+promoted-slave",
    "+failover-state-reconf-slaves",
})
#: Stages after which the chosen replica is (about to be) writable: fence the old master.
PROMOTION_EVENTS = frozenset({"+failover-state-send-slaveof-noone", "+promoted-slave"})
#: ``-failover-abort-not-elected``, ``-failover-abort-no-good-slave``, ...
FAILOVER_ABORT_PREFIX = "-failover-abort"

_INSTANCE_TYPES = frozenset({"master", "slave", "replica", "sentinel"})


@dataclass(frozen=True)
class SentinelEvent:
    """One event published by a sentinel.

    ``address`` is the instance the event is about (for ``+switch-master``:
    the new master); ``master_name``/``master_address`` name the master it
    belongs to (for ``+switch-master``: the old master's address).
    """

    kind: str
    payload: str
    source: Address | None = None
    instance_type: str | None = None
    instance_name: str | None = None
    address: Address | None = None
    master_name: str | None = None
    master_address: Address | None = None

    @property
    def is_failover_start(self) -> bool:
        """True for the stages that mean the master is being replaced."""
        return self.kind in FAILOVER_START_EVENTS

    @property
    def is_failover_abort(self) -> bool:
        """True for ``-failover-abort-*``."""
        return self.kind.startswith(FAILOVER_ABORT_PREFIX)


def _address(host: str, port: str) -> Address | None:
    try:
        return host, int(port)
    except ValueError:
        return None


def parse_event(
    kind: bytes | str, payload: bytes | str, source: Address | None = None
) -> SentinelEvent:
    """Parse one sentinel pub/sub message; unknown shapes keep only ``kind``/``payload``.

    A channel or payload that is not a string (a hostile or broken sentinel)
    raises :class:`~clustermgr.errors.ProtocolError`.
    """
    if not isinstance(kind, (bytes, str)) or not isinstance(payload, (bytes, str)):
        raise ProtocolError(
            f"malformed sentinel event: channel {excerpt(kind)}, payload {excerpt(payload)}"
        )
    kind_text = kind.decode(errors="replace") if isinstance(kind, bytes) else kind
    text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
    parts = text.split()
    if kind_text == "+switch-master" and len(parts) >= 5:
        return SentinelEvent(
            kind_text, text, source,
            instance_type="master", instance_name=parts[0],
            address=_address(parts[3], parts[4]),
            master_name=parts[0], master_address=_address(parts[1], parts[2]),
        )
    if len(parts) >= 4 and parts[0] in _INSTANCE_TYPES:
        instance_type, name = parts[0], parts[1]
        address = _address(parts[2], parts[3])
        if len(parts) >= 8 and parts[4] == "@":
            return SentinelEvent(
                kind_text, text, source,
                instance_type=instance_type, instance_name=name, address=address,
                master_name=parts[5], master_address=_address(parts[6], parts[7]),
            )
        if instance_type == "master":
            return SentinelEvent(
                kind_text, text, source,
                instance_type=instance_type, instance_name=name, address=address,
                master_name=name, master_address=address,
            )
        return SentinelEvent(
            kind_text, text, source,
            instance_type=instance_type, instance_name=name, address=address,
        )
    return SentinelEvent(kind_text, text, source)


def remap_event(event: SentinelEvent, remap: Callable[[Address], Address]) -> SentinelEvent:
    """``event`` with its addresses passed through ``remap`` (see ``address_remap``)."""
    address, master = event.address, event.master_address
    if address is None and master is None:
        return event
    return replace(
        event,
        address=None if address is None else remap(address),
        master_address=None if master is None else remap(master),
    )
