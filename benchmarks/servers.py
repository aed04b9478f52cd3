"""The servers a run uses: started with clustermgr's own launcher, or given.

One :class:`Servers` lives for the whole run, so every client is measured
against the same cluster, the same standalone server and the same sentinel
group; the data set is flushed before every measurement.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from .jobs import Target, TargetKind

__all__ = ["Servers", "parse_hostport"]


def parse_hostport(text: str) -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {text!r}")
    return host, int(port)


def _cluster_layout(seed: tuple[str, int]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """All nodes and the masters of the cluster ``seed`` belongs to (``CLUSTER SLOTS``)."""
    from clustermgr.testing.resp import as_int, as_list, as_str, execute

    masters: list[tuple[str, int]] = []
    nodes: list[tuple[str, int]] = []
    for entry in as_list(execute(seed, "CLUSTER", "SLOTS")):
        items = as_list(entry)
        for position, raw in enumerate(items[2:]):
            node = as_list(raw)
            address = (as_str(node[0]) or seed[0], as_int(node[1]))
            if address not in nodes:
                nodes.append(address)
            if position == 0 and address not in masters:
                masters.append(address)
    return nodes, masters


SENTINEL_SERVICE = "mymaster"
SENTINEL_REPLICAS = 1
SENTINEL_COUNT = 3
SENTINEL_DOWN_AFTER_MS = 60_000
"""Long enough that a loaded 2-core machine never sees a failover mid-run."""


def sentinel_master(sentinel: tuple[str, int], service: str) -> tuple[str, int]:
    """The master of ``service`` as ``sentinel`` reports it."""
    from clustermgr.testing.resp import as_int, as_list, as_str, execute

    reply = as_list(execute(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", service))
    if len(reply) != 2:
        raise RuntimeError(f"sentinel {sentinel[0]}:{sentinel[1]} does not know {service!r}")
    return as_str(reply[0]), as_int(reply[1])


class Servers:
    """Lazily started local cluster / standalone server (or given addresses)."""

    def __init__(
        self,
        cluster: tuple[str, int] | None = None,
        single: tuple[str, int] | None = None,
        sentinel: tuple[str, int] | None = None,
        service: str = SENTINEL_SERVICE,
        masters: int = 3,
        replicas_per_master: int = 1,
    ) -> None:
        self._given_cluster = cluster
        self._given_single = single
        self._given_sentinel = sentinel
        self._service = service
        self._masters = masters
        self._replicas = replicas_per_master
        self._stack = contextlib.ExitStack()
        self._targets: dict[TargetKind, Target] = {}
        self._flush: dict[Target, list[tuple[str, int]]] = {}
        self.info: dict[str, Any] = {}

    def target(self, kind: TargetKind) -> Target:
        """The cluster, single-node or sentinel target, started on first use."""
        if kind not in self._targets:
            start = {"cluster": self._cluster, "single": self._single,
                     "sentinel": self._sentinel}[kind]
            self._targets[kind] = start()
        return self._targets[kind]

    def master_of(self, target: Target) -> tuple[str, int]:
        """The data node to write to: the sentinel group's master, else the first node."""
        if target.kind == "sentinel":
            return sentinel_master(target.address, target.service)
        return target.address

    def _cluster(self) -> Target:
        seed = self._given_cluster
        if seed is None:
            topology = self._start_cluster(self._masters, self._replicas)
            seed = topology.startup_nodes[0]
            self.info["cluster"] = (
                f"local, {self._masters} masters + {self._replicas} replica(s) each"
            )
        else:
            self.info["cluster"] = f"given, {seed[0]}:{seed[1]}"
        nodes, masters = _cluster_layout(seed)
        target = Target("cluster", tuple(nodes))
        self._flush[target] = masters
        return target

    def _start_cluster(self, masters: int, replicas: int) -> Any:
        from clustermgr.testing import LocalCluster

        print(f"[bench] starting a local cluster ({masters}m/{replicas}r) ...", file=sys.stderr)
        topology = self._stack.enter_context(LocalCluster(masters, replicas))
        self.info["server_version"] = ".".join(map(str, topology.nodes[0].version))
        return topology

    def _single(self) -> Target:
        address = self._given_single
        if address is None:
            from clustermgr.testing import LocalStandalone

            print("[bench] starting a local standalone server ...", file=sys.stderr)
            address = self._stack.enter_context(LocalStandalone()).address
            self.info["single"] = "local"
        else:
            self.info["single"] = f"given, {address[0]}:{address[1]}"
        target = Target("single", (address,))
        self._flush[target] = [address]
        return target

    def _sentinel(self) -> Target:
        seed = self._given_sentinel
        if seed is None:
            from clustermgr.testing import LocalSentinelGroup

            print("[bench] starting a local sentinel group ...", file=sys.stderr)
            group = self._stack.enter_context(LocalSentinelGroup(
                self._service, SENTINEL_REPLICAS, SENTINEL_COUNT,
                down_after_ms=SENTINEL_DOWN_AFTER_MS,
                failover_timeout_ms=2 * SENTINEL_DOWN_AFTER_MS,
            ))
            sentinels = tuple(group.sentinel_addresses)
            self.info["sentinel"] = (f"local, 1 master + {SENTINEL_REPLICAS} replica(s) + "
                                     f"{SENTINEL_COUNT} sentinels, service {self._service!r}")
        else:
            sentinels = (seed,)
            self.info["sentinel"] = f"given, {seed[0]}:{seed[1]}, service {self._service!r}"
        target = Target("sentinel", sentinels, self._service)
        self._flush[target] = []  # resolved through the sentinels at each flush
        return target

    @contextlib.contextmanager
    def temporary_cluster(self, masters: int, replicas: int = 0) -> Iterator[Target]:
        """A separate local cluster for the duration of the ``with`` block."""
        from clustermgr.testing import LocalCluster

        print(f"[bench] starting a local cluster ({masters}m/{replicas}r) ...", file=sys.stderr)
        with LocalCluster(masters, replicas) as topology:
            nodes, master_nodes = _cluster_layout(topology.startup_nodes[0])
            target = Target("cluster", tuple(nodes))
            self._flush[target] = master_nodes
            try:
                yield target
            finally:
                del self._flush[target]

    def flush(self, target: Target) -> None:
        """``FLUSHALL`` on every master of ``target`` (replicas follow)."""
        from clustermgr.testing.resp import execute

        masters = [self.master_of(target)] if target.kind == "sentinel" else self._flush[target]
        for address in masters:
            execute(address, "FLUSHALL", timeout=30.0)

    def close(self) -> None:
        """Stop whatever this object started."""
        self._stack.close()

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
