"""Reading a cluster's shape from one node, for ``topology`` and ``keyslot``."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field, replace
from typing import Any

from .._timeout import timeout as _timeout
from ..address import ServerAddress, address_text
from ..cluster.topology import Address, SlotMap, read_slot_map
from ..connection import RedisConnection, create_connection
from ..errors import ReplyError
from ._common import CliError

__all__ = ["ClusterView", "NodeRow", "read_cluster"]

_TIMEOUT = 2.0


@dataclass
class NodeRow:
    """One node as the ``topology`` command shows it."""

    address: Address
    node_id: str = ""
    role: str = "master"
    health: str = "online"
    config_epoch: int | None = None
    keys: int | None = None
    master: Address | None = None
    slots: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class ClusterView:
    """The slot map seen by one node, with one row per node."""

    source: Address
    slot_map: SlotMap
    nodes: list[NodeRow]

    def owner(self, slot: int) -> Address | None:
        """The master serving ``slot``."""
        shard = self.slot_map.shards[slot]
        return shard.master.address if shard is not None else None


async def _connect(address: ServerAddress, tls: ssl.SSLContext | None) -> RedisConnection:
    return await create_connection(address, ssl=tls, timeout=_TIMEOUT)


def _parse_nodes(reply: Any) -> dict[Address, tuple[str, str, int]]:
    """``CLUSTER NODES`` -> address: (node id, flags, config epoch)."""
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    found: dict[Address, tuple[str, str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        host, _, port = parts[1].split("@", 1)[0].rpartition(":")
        if port.isdigit():
            found[(host, int(port))] = (parts[0], parts[2], int(parts[6]))
    return found


async def _dbsize(address: Address, base: ServerAddress, tls: ssl.SSLContext | None) -> int | None:
    try:
        conn = await _connect(replace(base, host=address[0], port=address[1]), tls)
    except (OSError, asyncio.TimeoutError, Exception):
        return None
    try:
        async with _timeout(_TIMEOUT):
            return int(await conn.execute(b"DBSIZE"))
    except Exception:
        return None
    finally:
        conn.close()
        await conn.wait_closed()


async def read_cluster(
    address: ServerAddress, *, tls: ssl.SSLContext | None = None, keys: bool = True
) -> ClusterView:
    """The slot map and nodes as seen from the node at ``address``.

    Every connection (to ``address`` and, for key counts, to each node) uses
    ``tls`` and the credentials of ``address``.
    """
    target = address.target
    assert isinstance(target, tuple)
    conn = await _connect(address, tls)
    try:
        async with _timeout(_TIMEOUT * 2):
            try:
                slot_map = await read_slot_map(conn.execute, target, tls=tls is not None)
            except ReplyError as exc:
                if "cluster support disabled" in str(exc).lower():
                    raise CliError(
                        f"{address_text(target)} is not a cluster node (cluster support "
                        "disabled); for a sentinel group use `clustermgr sentinel`"
                    ) from None
                raise
            described = _parse_nodes(await conn.execute(b"CLUSTER", b"NODES"))
    finally:
        conn.close()
        await conn.wait_closed()
    rows: dict[Address, NodeRow] = {}
    for first, last, owner in slot_map.ranges():
        rows.setdefault(owner, NodeRow(owner)).slots.append((first, last))
    for shard in {s for s in slot_map.shards if s is not None}:
        master = rows.setdefault(shard.master.address, NodeRow(shard.master.address))
        master.health = shard.master.health
        for replica in shard.replicas:
            rows[replica.address] = NodeRow(
                replica.address, role="replica", health=replica.health,
                master=shard.master.address,
            )
    for node in slot_map.nodes:
        rows.setdefault(node.address, NodeRow(node.address, role=node.role, health=node.health))
    for row_address, row in rows.items():
        node_id, flags, epoch = described.get(row_address, ("", "", -1))
        row.node_id, row.config_epoch = node_id, (epoch if epoch >= 0 else None)
        if "fail" in flags.split(",") and row.health == "online":
            row.health = "failed"
    if keys:
        counts = await asyncio.gather(*(_dbsize(a, address, tls) for a in rows))
        for row, count in zip(rows.values(), counts, strict=True):
            row.keys = count
    ordered = sorted(rows.values(), key=lambda r: (r.master or r.address, r.role != "master"))
    return ClusterView(target, slot_map, ordered)
