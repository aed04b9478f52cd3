"""Node health does not flap: a dead node is down once, up once it answers (issue 14).

The pools reload as ``clustermgr watch`` does (every 0.3 s), so a flapping
report would show several times within the observation window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from clustermgr.cluster import RefreshOptions, create_cluster_pool
from clustermgr.events import Event, NodeDown, NodeUp
from clustermgr.testing.cluster import LocalCluster

ClusterFactory = Callable[..., LocalCluster]

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]

WATCH = RefreshOptions(period=0.3, min_interval=0.05)


def _about(events: list[Event], address: tuple[str, int]) -> list[Event]:
    return [e for e in events if isinstance(e, (NodeDown, NodeUp)) and e.address == address]


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _assert_reason(event: Event) -> None:
    reason = getattr(event, "reason", "")
    assert reason and not reason.rstrip().endswith(":"), f"empty reason in {event}"


async def test_killed_master_is_down_once_and_up_once_it_answers(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes, refresh=WATCH)
    seen: list[Event] = []
    pool.events.subscribe(seen.append)
    try:
        victim = cluster.masters[0]
        (replica,) = cluster.replicas_of(victim)
        cluster.kill(victim)
        await _until(lambda: replica.role() == "master", 20, "the promotion")
        await asyncio.to_thread(cluster.wait_ok, 20)
        await asyncio.sleep(3.0)  # ten reloads at least
        events = _about(seen, victim.address)
        assert [type(e) for e in events] == [NodeDown], [str(e) for e in events]
        _assert_reason(events[0])
        await asyncio.to_thread(cluster.restart, victim, wait_ok=True)
        await _until(lambda: len(_about(seen, victim.address)) > 1, 15, "NodeUp")
        await asyncio.sleep(1.0)
        events = _about(seen, victim.address)
        assert [type(e) for e in events] == [NodeDown, NodeUp], [str(e) for e in events]
        assert "answered" in events[1].reason  # type: ignore[attr-defined]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_paused_master_is_down_with_a_reason(local_cluster_factory: ClusterFactory) -> None:
    """A frozen master times out (``TimeoutError()`` has no message): the reason still
    says what happened, the node is down once, and up once after it answers again."""
    cluster = local_cluster_factory(replicas_per_master=0, node_timeout_ms=5000)
    pool = await create_cluster_pool(cluster.startup_nodes, refresh=WATCH)
    seen: list[Event] = []
    pool.events.subscribe(seen.append)
    try:
        victim = cluster.masters[0]
        cluster.pause(victim)
        try:
            await _until(lambda: bool(_about(seen, victim.address)), 15, "NodeDown")
            await asyncio.sleep(2.0)
            events = _about(seen, victim.address)
            assert [type(e) for e in events] == [NodeDown], [str(e) for e in events]
            _assert_reason(events[0])
        finally:
            cluster.resume(victim)
        await _until(lambda: len(_about(seen, victim.address)) > 1, 15, "NodeUp")
        events = _about(seen, victim.address)
        assert [type(e) for e in events] == [NodeDown, NodeUp], [str(e) for e in events]
    finally:
        pool.close()
        await pool.wait_closed()
