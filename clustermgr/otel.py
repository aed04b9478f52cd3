"""OpenTelemetry metrics for a pool (optional: needs the ``otel`` extra, opentelemetry-api).

:func:`instrument` registers observable instruments that read ``pool.stats()``
when the SDK collects, following OpenTelemetry's semantic conventions for
database clients:

* ``db.client.connection.count`` (``db.client.connection.state`` idle/used),
* ``db.client.connection.pending_requests``,
* ``db.client.connection.timeouts``,
* ``db.client.operation.duration`` (seconds; only with ``durations=True``,
  which turns the pool's latency histogram on),

with ``db.system.name=redis``, ``db.client.connection.pool.name``,
``server.address`` and ``server.port``; and clustermgr's own counters under
``clustermgr.client.*`` (commands, errors by ``error.type``, redirects,
reconnects, resubscribes, slot map refreshes).

opentelemetry is imported when :func:`instrument` is called, never at
``import clustermgr``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .stats import NodeStats, PoolStats

__all__ = ["Instrumentation", "instrument"]

_SYSTEM = "redis"


def _server(node: NodeStats) -> dict[str, Any]:
    host, _, port = node.address.rpartition(":")
    if host and port.isdigit():
        return {"server.address": host, "server.port": int(port)}
    return {"server.address": node.address}


class Instrumentation:
    """The instruments registered for one pool; :meth:`close` stops reporting."""

    def __init__(self, pool: Any, meter: Any, pool_name: str, durations: bool) -> None:
        from opentelemetry.metrics import Observation

        self._pool = pool
        self._name = pool_name
        self._closed = False
        self._observation = Observation
        gauge = meter.create_observable_up_down_counter
        counter = meter.create_observable_counter
        gauge("db.client.connection.count", callbacks=[self._connections], unit="{connection}",
              description="Connections open, by state (idle or used).")
        gauge("db.client.connection.pending_requests", callbacks=[self._pending],
              unit="{request}", description="Callers waiting for a connection.")
        counter("db.client.connection.timeouts", callbacks=[self._per_node(
            lambda n: n.errors.get("TimeoutError", 0))], unit="{timeout}",
            description="Waits for a connection that timed out.")
        for name, field, unit in (
            ("commands", "commands", "{command}"),
            ("redirects", "redirects", "{redirect}"),
            ("reconnects", "reconnects", "{reconnect}"),
            ("resubscribes", "resubscribes", "{subscription}"),
        ):
            counter(f"clustermgr.client.{name}", callbacks=[self._per_node(
                operator.attrgetter(field))], unit=unit,
                description=f"clustermgr {name} per node.")
        counter("clustermgr.client.errors", callbacks=[self._errors], unit="{error}",
                description="Failed commands per node, by error.type.")
        counter("clustermgr.client.refreshes", callbacks=[self._refreshes], unit="{refresh}",
                description="Cluster slot map reloads.")
        self._duration: Any = None
        if durations:
            self._duration = meter.create_histogram(
                "db.client.operation.duration", unit="s",
                description="Duration of database client operations.",
            )
            pool.enable_latency_histogram(self._record)

    # -- callbacks -------------------------------------------------------------

    def _stats(self) -> PoolStats | None:
        if self._closed:
            return None
        stats: PoolStats = self._pool.stats()
        return stats

    def _attributes(self, node: NodeStats, **extra: Any) -> dict[str, Any]:
        return {
            "db.system.name": _SYSTEM,
            "db.client.connection.pool.name": f"{self._name}/{node.address}",
            **_server(node), **extra,
        }

    def _observe(self, values: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[Any]:
        for value, attributes in values:
            yield self._observation(value, attributes)

    def _connections(self, options: Any) -> Iterable[Any]:
        stats = self._stats()
        if stats is None:
            return []
        values: list[tuple[int, dict[str, Any]]] = []
        for node in stats.nodes:
            idle = node.connections_free
            values.append((idle, self._attributes(node, **{"db.client.connection.state": "idle"})))
            used = max(0, node.connections_open - idle)
            values.append((used, self._attributes(node, **{"db.client.connection.state": "used"})))
        return list(self._observe(values))

    def _pending(self, options: Any) -> Iterable[Any]:
        stats = self._stats()
        nodes = stats.nodes if stats is not None else ()
        return list(self._observe((n.waiting, self._attributes(n)) for n in nodes))

    def _per_node(self, value: Callable[[NodeStats], int]) -> Callable[[Any], Iterable[Any]]:
        def callback(options: Any) -> Iterable[Any]:
            stats = self._stats()
            nodes = stats.nodes if stats is not None else ()
            return list(self._observe((value(n), self._attributes(n)) for n in nodes))

        return callback

    def _errors(self, options: Any) -> Iterable[Any]:
        stats = self._stats()
        nodes = stats.nodes if stats is not None else ()
        return list(self._observe(
            (count, self._attributes(n, **{"error.type": name}))
            for n in nodes for name, count in n.errors.items()
        ))

    def _refreshes(self, options: Any) -> Iterable[Any]:
        stats = self._stats()
        if stats is None:
            return []
        return [self._observation(stats.refreshes, {"db.system.name": _SYSTEM,
                                                    "db.client.connection.pool.name": self._name})]

    def _record(self, address: Any, seconds: float) -> None:
        if self._closed or self._duration is None:
            return
        attributes: dict[str, Any] = {"db.system.name": _SYSTEM}
        if isinstance(address, tuple):
            attributes["server.address"], attributes["server.port"] = address
        self._duration.record(seconds, attributes)

    def close(self) -> None:
        """Stop reporting (the instruments stay registered but observe nothing)."""
        self._closed = True


def instrument(
    pool: Any,
    *,
    meter_provider: Any = None,
    pool_name: str = "clustermgr",
    durations: bool = False,
) -> Instrumentation:
    """Report ``pool``'s stats as OpenTelemetry metrics.

    ``meter_provider`` defaults to the global one. ``durations=True`` also
    records ``db.client.operation.duration`` for every command, which turns
    on the pool's latency histogram (a clock read per command). Raises
    ImportError with an install hint if opentelemetry-api is missing.
    """
    try:
        from opentelemetry import metrics
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "clustermgr.otel needs opentelemetry-api: pip install 'clustermgr[otel]'"
        ) from exc
    from . import __version__

    provider = meter_provider or metrics.get_meter_provider()
    meter = provider.get_meter("clustermgr", __version__)
    return Instrumentation(pool, meter, pool_name, durations)
