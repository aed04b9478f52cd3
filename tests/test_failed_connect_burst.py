"""More commands than ``maxsize`` while every connect fails: each one ends, typed.

The commands past ``maxsize`` queue for a connection; a connect that fails
with nothing else open or opening hands them its failure (``may_have_executed``
False) instead of leaving them waiting forever. In a cluster the commands for
a killed master (no replica) end, typed, within about ``retry_timeout``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from clustermgr import create_pool
from clustermgr.cluster import create_cluster_pool, key_slot
from clustermgr.errors import AuthError, ClusterRetryError, ConnectError
from clustermgr.testing import LocalCluster, LocalStandalone, find_free_port

pytestmark = pytest.mark.timeout(90)


async def _burst(
    pool: Any, count: int, bound: float, how: str = "execute"
) -> list[BaseException]:
    start = (lambda: pool.execute(b"PING")) if how == "execute" else pool.acquire
    tasks = [asyncio.ensure_future(start()) for _ in range(count)]
    done, pending = await asyncio.wait(tasks, timeout=bound)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert not pending, f"{len(pending)} of {count} commands still waiting after {bound}s"
    return [task.exception() for task in done]  # type: ignore[misc]


@pytest.mark.parametrize("how", ["execute", "acquire"])
@pytest.mark.parametrize("lazy", [False, True])
async def test_a_burst_past_maxsize_against_a_wrong_password_all_fail_typed(
    lazy: bool, how: str
) -> None:
    with LocalStandalone(password="right") as server:
        pool = await create_pool(
            server.address, lazy=lazy, minsize=0, maxsize=5, password="wrong",
            create_connection_timeout=1,
        )
        try:
            failures = await _burst(pool, 20, 8, how)
            assert all(isinstance(f, AuthError) for f in failures), failures
            assert not any(f.may_have_executed for f in failures)  # type: ignore[union-attr]
        finally:
            pool.close()
            await pool.wait_closed()


async def test_a_burst_past_maxsize_against_a_refusing_port_all_fail_typed() -> None:
    pool = await create_pool(
        ("127.0.0.1", find_free_port()), lazy=True, maxsize=5, create_connection_timeout=1
    )
    try:
        failures = await _burst(pool, 20, 8)
        assert all(isinstance(f, ConnectError) for f in failures), failures
        assert not any(f.may_have_executed for f in failures)  # type: ignore[union-attr]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_commands_for_a_killed_master_end_within_the_retry_timeout() -> None:
    with LocalCluster(masters=3, replicas_per_master=0) as cluster:
        pool = await create_cluster_pool(cluster.startup_nodes, maxsize=2, retry_timeout=2)
        try:
            victim = cluster.masters[0]
            keys = [k for k in (f"d{i}" for i in range(5000))
                    if cluster.node_for_slot(key_slot(k)).port == victim.port][:50]
            cluster.kill(victim)
            started = time.monotonic()
            tasks = [asyncio.ensure_future(pool.execute(b"GET", k)) for k in keys]
            done, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            assert not pending, f"{len(pending)} of 50 GETs still waiting after 10s"
            assert time.monotonic() - started < 2 + 3
            failures = [task.exception() for task in done]
            assert all(isinstance(f, (ClusterRetryError, ConnectError)) for f in failures)
        finally:
            pool.close()
            await pool.wait_closed()
