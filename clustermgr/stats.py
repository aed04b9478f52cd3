"""Counters and snapshots behind ``pool.stats()``.

A :class:`Counters` object per node is updated in place: connections add the
commands they flush (once per write, not per command) and count error
replies; the pool counts connects, reconnects, resubscribes and redirects.
:meth:`stats` on a pool turns them into immutable :class:`NodeStats` /
:class:`PoolStats` snapshots. Command latency is opt-in
(``pool.enable_latency_histogram()``): when it is off, no clock is read.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .address import address_text

__all__ = [
    "LATENCY_BOUNDS",
    "Counters",
    "HistogramSnapshot",
    "LatencyHistogram",
    "NodeStats",
    "PoolStats",
]

#: Upper bounds (seconds) of the latency histogram buckets; one more bucket holds the rest.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)


class Counters:
    """Mutable per-node counters, shared by a node's pool and its connections."""

    __slots__ = (
        "commands", "connects", "disconnects", "errors", "exhausted", "reconnects",
        "redirects", "resubscribes",
    )

    def __init__(self) -> None:
        #: Commands written to the server (counted per flush).
        self.commands = 0
        #: Connections opened.
        self.connects = 0
        #: Connections lost without being closed by us.
        self.disconnects = 0
        #: Failed commands by error class name (error replies, lost connections, timeouts).
        self.errors: dict[str, int] = {}
        #: Times a caller had to wait because every connection was taken.
        self.exhausted = 0
        #: Pub/sub connections re-established after a loss.
        self.reconnects = 0
        #: MOVED/ASK answers from this node.
        self.redirects = 0
        #: Subscriptions restored on a new connection or node.
        self.resubscribes = 0

    def error(self, name: str, count: int = 1) -> None:
        """Count ``count`` failures of class ``name``."""
        self.errors[name] = self.errors.get(name, 0) + count


@dataclass(frozen=True)
class HistogramSnapshot:
    """Bucket counts of a latency histogram (seconds)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum: float

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q`` (None when empty)."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return self.bounds[index] if index < len(self.bounds) else float("inf")
        return float("inf")

    @staticmethod
    def merge(items: Iterable[HistogramSnapshot]) -> HistogramSnapshot | None:
        """Sum several snapshots with the same bounds (None if there are none)."""
        items = list(items)
        if not items:
            return None
        counts = [sum(c) for c in zip(*(h.counts for h in items), strict=True)]
        return HistogramSnapshot(
            items[0].bounds, tuple(counts), sum(h.count for h in items), sum(h.sum for h in items)
        )


Listener = Callable[[float], None]


class LatencyHistogram:
    """Command latencies in fixed buckets (see :data:`LATENCY_BOUNDS`)."""

    __slots__ = ("bounds", "count", "counts", "listeners", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BOUNDS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0
        #: Called with each observation (e.g. the OpenTelemetry bridge).
        self.listeners: list[Listener] = []

    def observe(self, seconds: float) -> None:
        """Record one latency."""
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds
        for listener in self.listeners:
            listener(seconds)

    def snapshot(self) -> HistogramSnapshot:
        """An immutable copy of the counts."""
        return HistogramSnapshot(self.bounds, tuple(self.counts), self.count, self.sum)


def timed(histogram: LatencyHistogram, awaitable: Any, started: float) -> Any:
    """Record ``awaitable``'s latency from ``started`` (``time.perf_counter()``) when it ends."""
    add = getattr(awaitable, "add_done_callback", None)
    if add is not None:
        add(lambda _f: histogram.observe(time.perf_counter() - started))
    return awaitable


def timing(
    histogram: LatencyHistogram, entry: Callable[..., Any], owner: object
) -> Callable[..., Any]:
    """``entry`` (an unbound method of ``owner``) with each call's latency recorded."""

    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        return timed(histogram, entry(owner, *args, **kwargs), started)

    return run


@dataclass(frozen=True)
class NodeStats:
    """One node's numbers at the time of the snapshot."""

    address: str
    role: str | None = None
    connections_open: int = 0
    connections_free: int = 0
    waiting: int = 0
    in_flight: int = 0
    commands: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)
    connects: int = 0
    disconnects: int = 0
    reconnects: int = 0
    resubscribes: int = 0
    redirects: int = 0
    exhausted: int = 0
    latency: HistogramSnapshot | None = None

    @classmethod
    def of(cls, address: Any, counters: Counters, **fields: Any) -> NodeStats:
        """A snapshot of ``counters`` plus the given live values (connections, role...)."""
        return cls(
            address=address_text(address), commands=counters.commands,
            errors=dict(counters.errors), connects=counters.connects,
            disconnects=counters.disconnects, reconnects=counters.reconnects,
            resubscribes=counters.resubscribes, redirects=counters.redirects,
            exhausted=counters.exhausted, **fields,
        )


@dataclass(frozen=True)
class PoolStats:
    """A pool's numbers: per node, and pool-wide ones (refreshes, failovers)."""

    kind: str
    nodes: tuple[NodeStats, ...]
    refreshes: int = 0
    failovers: int = 0
    at: float = field(default_factory=time.time)

    def _sum(self, name: str) -> int:
        return sum(int(getattr(n, name)) for n in self.nodes)

    @property
    def commands(self) -> int:
        """Commands sent, all nodes."""
        return self._sum("commands")

    @property
    def connections_open(self) -> int:
        """Connections open, all nodes."""
        return self._sum("connections_open")

    @property
    def connections_free(self) -> int:
        """Connections not acquired, all nodes."""
        return self._sum("connections_free")

    @property
    def waiting(self) -> int:
        """Callers waiting for a connection, all nodes."""
        return self._sum("waiting")

    @property
    def redirects(self) -> int:
        """MOVED/ASK answers, all nodes."""
        return self._sum("redirects")

    @property
    def reconnects(self) -> int:
        """Pub/sub reconnects, all nodes."""
        return self._sum("reconnects")

    @property
    def resubscribes(self) -> int:
        """Subscriptions restored, all nodes."""
        return self._sum("resubscribes")

    @property
    def errors(self) -> dict[str, int]:
        """Failures by error class, all nodes."""
        total: dict[str, int] = {}
        for node in self.nodes:
            for name, count in node.errors.items():
                total[name] = total.get(name, 0) + count
        return total

    @property
    def latency(self) -> HistogramSnapshot | None:
        """Latency of all nodes merged (None unless the histogram was enabled)."""
        return HistogramSnapshot.merge(n.latency for n in self.nodes if n.latency is not None)

    def node(self, address: Any) -> NodeStats | None:
        """The stats of the node at ``address`` (``(host, port)`` or ``"host:port"``)."""
        text = address if isinstance(address, str) else address_text(address)
        return next((n for n in self.nodes if n.address == text), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with the pool-wide totals, for JSON or logs."""
        data = asdict(self)
        data.update(
            commands=self.commands, connections_open=self.connections_open,
            waiting=self.waiting, redirects=self.redirects, errors=self.errors,
        )
        return data
