"""Which node serves a shard's reads: replica choice, zones (az_affinity), latency (nearest).

:class:`ReaderPicker` picks the reader of each shard for the pool's
``read_from`` and keeps what that choice needs: the availability zone of
each node (``read_from="az_affinity"``, read once per node by
:meth:`ReaderPicker.learn_zones`) and a smoothed round-trip time per node
(``read_from="nearest"``, :meth:`ReaderPicker.measure`). It asks nodes
only through the callables it is given.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from .._timeout import timeout as _timeout
from ..errors import RedisError
from ..pool import ConnectionsPool
from .topology import Address, Shard

__all__ = ["AskNode", "ReaderPicker", "pick_az_reader"]

AskNode = Callable[[Address, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]
"""``ask_node(address, ask)``: ``ask(execute)`` run on the node at ``address``."""


class ReaderPicker:
    """Picks each shard's reader for ``read_from`` (see module doc)."""

    def __init__(self, read_from: str, client_az: str | None = None) -> None:
        self._read_from = read_from
        self._client_az = client_az
        self._zones: dict[Address, str] = {}  # availability zone of each node, once read
        self._latency: dict[Address, float] = {}

    def pick(self, shard: Shard, kept: Address | str | None = None) -> Address:
        """The node to read ``shard``'s slots from; a healthy replica read from
        (``kept``, its open reader) stays the reader, so a reload that changes
        nothing moves no reads."""
        if self._read_from == "az_affinity":
            return pick_az_reader(shard, self._client_az or "", self._zones)
        replicas = [r.address for r in shard.healthy_replicas]
        if self._read_from == "nearest":
            choices = [shard.master.address, *replicas]
            return min(choices, key=lambda a: self._latency.get(a, float("inf")))
        if isinstance(kept, tuple) and kept in replicas:
            return kept
        if replicas:
            return random.choice(replicas)
        return shard.master.address

    def zones_missing(self, addresses: Iterable[Address]) -> list[Address]:
        """The ``addresses`` whose zone was not read yet."""
        return [a for a in addresses if a not in self._zones]

    async def learn_zones(self, addresses: Iterable[Address], ask_node: AskNode) -> None:
        """Read the ``availability_zone`` (``INFO server``, Valkey 8.1+) of each of
        ``addresses`` not known yet: one INFO per node, at once, through
        ``ask_node`` (which bounds it in time).

        A node that does not say (older servers, INFO denied, no answer in
        time) has no zone: it is never "in the client's zone".
        """

        def ask(execute: Any) -> Awaitable[Any]:
            return execute(b"INFO", b"server", encoding=None)  # type: ignore[no-any-return]

        async def zone(address: Address) -> None:
            try:
                info = await ask_node(address, ask)
            except (RedisError, OSError, asyncio.TimeoutError):
                return
            self._zones[address] = _info_field(info, "availability_zone")

        await asyncio.gather(*(zone(a) for a in self.zones_missing(addresses)))

    async def measure(self, pools: Mapping[Address, ConnectionsPool], timeout: float) -> None:
        """PING each node pool (each within ``timeout``) and fold its round-trip time
        into the node's latency (a failure counts as infinitely far)."""
        loop = asyncio.get_running_loop()

        async def ping(address: Address, pool: ConnectionsPool) -> None:
            start = loop.time()
            try:
                async with _timeout(timeout):
                    await pool.execute(b"PING")
            except (RedisError, OSError, asyncio.TimeoutError):
                self._latency[address] = float("inf")
                return
            rtt = loop.time() - start
            old = self._latency.get(address)
            self._latency[address] = rtt if old is None or old == float("inf") else (
                0.7 * old + 0.3 * rtt
            )

        await asyncio.gather(*(ping(a, p) for a, p in list(pools.items())))


def pick_az_reader(shard: Shard, client_az: str, zones: Mapping[Address, str]) -> Address:
    """The reader for ``read_from="az_affinity"``: a healthy replica in ``client_az``,
    else any healthy replica, else the master (``zones``: address -> zone)."""
    replicas = [r.address for r in shard.healthy_replicas]
    local = [a for a in replicas if zones.get(a) == client_az]
    if local:
        return random.choice(local)
    if replicas:
        return random.choice(replicas)
    return shard.master.address


def _info_field(info: Any, name: str) -> str:
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    prefix = name + ":"
    for line in text.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return ""
