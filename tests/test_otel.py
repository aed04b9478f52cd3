"""The OpenTelemetry bridge, against the SDK's in-memory reader (skipped without the SDK)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.metrics")
sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
sdk_export = pytest.importorskip("opentelemetry.sdk.metrics.export")

from clustermgr import create_pool  # noqa: E402
from clustermgr.otel import instrument  # noqa: E402


def _points(reader: Any) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_pool_metrics_follow_db_client_conventions(redis_standalone: Any) -> None:
    reader = sdk_export.InMemoryMetricReader()
    provider = sdk_metrics.MeterProvider(metric_readers=[reader])
    pool = await create_pool(redis_standalone.address, minsize=2)
    try:
        bridge = instrument(pool, meter_provider=provider, pool_name="app", durations=True)
        for _ in range(10):
            await pool.execute("PING")
        points = _points(reader)
        states = {p.attributes["db.client.connection.state"]: p.value
                  for p in points["db.client.connection.count"]}
        assert states["idle"] + states["used"] == 2
        attributes = points["db.client.connection.count"][0].attributes
        assert attributes["db.system.name"] == "redis"
        assert attributes["server.port"] == redis_standalone.port
        assert attributes["db.client.connection.pool.name"].startswith("app/")
        assert points["clustermgr.client.commands"][0].value >= 10
        duration = points["db.client.operation.duration"][0]
        assert duration.count == 10 and duration.sum > 0
        bridge.close()
        assert "db.client.connection.count" not in _points(reader) or all(
            not p for p in _points(reader).get("db.client.connection.count", [])
        )
    finally:
        pool.close()
        await pool.wait_closed()
        provider.shutdown()
