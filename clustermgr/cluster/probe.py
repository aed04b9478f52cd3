"""Whether a poll of the slot map needs the map itself: one node's ``CLUSTER INFO``.

While commands are held (a slot's owner unreachable, CLUSTERDOWN) the map is
polled every ``hold_interval``. A full read is ``CLUSTER SHARDS`` + ``CLUSTER
NODES`` (about 11 KiB at 30 nodes); ``CLUSTER INFO`` (about 600 B) shows
whether anything a full read could find has moved: the current epoch, the
cluster state, how many slots are ok, in PFAIL, in FAIL, how many nodes.

:class:`ClusterInfo` is that part of a reply. :class:`MapProbe` keeps, per
node, the info of its last full read and of its last probe, and says whether
a new info is worth a full read (:meth:`MapProbe.worth_reading`): more slots
ok than at the last read, or as many with a new epoch, state or membership,
or more slots ok than the probe just before (a promotion while another shard
is still down). A failing master alone (PFAIL, FAIL, the vote's new epoch) reads
nothing: no new owner can be found until its replica is promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .topology import Address

__all__ = ["ClusterInfo", "MapProbe"]

_RECENT = 1.0
"""Seconds a probe stays the one "just before" the next (polls come every 50 ms)."""

_FIELDS = {
    "cluster_current_epoch": "epoch",
    "cluster_slots_assigned": "slots_assigned",
    "cluster_slots_ok": "slots_ok",
    "cluster_slots_pfail": "slots_pfail",
    "cluster_slots_fail": "slots_fail",
    "cluster_known_nodes": "known_nodes",
    "cluster_size": "size",
}


@dataclass(frozen=True)
class ClusterInfo:
    """The fields of a ``CLUSTER INFO`` reply that move when the slot map can."""

    state_ok: bool = True
    epoch: int = 0
    slots_assigned: int = 0
    slots_ok: int = 0
    slots_pfail: int = 0
    slots_fail: int = 0
    known_nodes: int = 0
    size: int = 0

    @classmethod
    def parse(cls, reply: Any) -> ClusterInfo:
        """Read a ``CLUSTER INFO`` reply (bytes or str); missing fields are 0."""
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        values: dict[str, Any] = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "cluster_state":
                values["state_ok"] = value.strip() != "fail"
            elif key in _FIELDS:
                try:
                    values[_FIELDS[key]] = int(value)
                except ValueError:
                    continue
        return cls(**values)


def _membership(info: ClusterInfo) -> tuple[int, bool, int, int, int]:
    return (info.epoch, info.state_ok, info.slots_assigned, info.known_nodes, info.size)


class MapProbe:
    """Per node, the info of its last full read and last probe (see module doc)."""

    def __init__(self) -> None:
        self._read: dict[Address, ClusterInfo] = {}
        self._seen: dict[Address, tuple[ClusterInfo, float]] = {}
        #: True once a node refused ``CLUSTER INFO`` (ACL): every poll reads the map.
        self.refused = False
        #: True once a node refused ``ROLE`` (ACL): promotions show in INFO only.
        self.role_refused = False

    def note_read(self, address: Address, info: ClusterInfo) -> None:
        """A full read of ``address`` was made with ``info`` (sent with it)."""
        self._read[address] = info

    def worth_reading(
        self, address: Address, info: ClusterInfo, now: float, map_epoch: int | None
    ) -> bool:
        """Whether ``info``, probed from ``address`` at ``now``, calls for a full read.

        ``map_epoch``: the current epoch of the map in use if it names
        ``address``, else None. A member never read whose epoch is no newer is
        taken as read now: no failover finished since. Others are read.
        """
        last = self._seen.get(address)
        self._seen[address] = (info, now)
        read = self._read.get(address)
        if read is None:
            if map_epoch is not None and info.epoch and info.epoch <= map_epoch:
                self._read[address] = info
                return False
            return True
        if info == read:
            return False
        if info.slots_ok > read.slots_ok:
            return True  # better off than at the last read
        if info.slots_ok == read.slots_ok:
            # As well off: a new epoch, state or membership; PFAIL turning FAIL is not news.
            return _membership(info) != _membership(read)
        if last is None or now - last[1] > _RECENT:
            return True  # worse off, and we did not watch it happen: look
        return info.slots_ok > last[0].slots_ok  # recovering: a promotion

    def forget(self, address: Address) -> None:
        """Drop what is known of ``address`` (it left the cluster)."""
        self._read.pop(address, None)
        self._seen.pop(address, None)
