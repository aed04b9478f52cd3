"""Replies still due from a master the slot map has just demoted.

A command written to a master before its failover may still be answered
after the pool has switched routes: with a redirect (a graceful failover
postponed the write; the old master, now a replica, answers MOVED), or with
an acknowledgement (a frozen master resumed; the write lands on a node that
will resync and lose it). The first is followed to the new master; the
second is never taken as success. Real servers; paused by CLIENT PAUSE or
SIGSTOP, always resumed in ``finally``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import RedisError
from clustermgr.slots import key_slot
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.process import LocalServer

ClusterFactory = Callable[..., LocalCluster]

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]


def _key_on(cluster: LocalCluster, node: LocalServer, prefix: str) -> str:
    return next(k for k in (f"{prefix}:{i}" for i in range(2000))
                if cluster.node_for_key(k).port == node.port)


async def _until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_a_postponed_write_answered_with_moved_after_the_switch_is_followed(
    local_cluster_factory: ClusterFactory,
) -> None:
    """A SET postponed on a master (its writes paused, as a manual failover does)
    while its replica takes over: once the pool has switched routes the old master,
    now a replica, answers MOVED; the SET runs on the new master, no error."""
    cluster = local_cluster_factory()
    victim = cluster.masters[0]
    (replica,) = cluster.replicas_of(victim)
    key = _key_on(cluster, victim, "postponed")
    slot = key_slot(key)
    pool = await create_cluster_pool(cluster.startup_nodes)
    try:
        await pool.execute("SET", key, "before")
        victim.command("CLIENT", "PAUSE", "20000", "WRITE")
        try:
            pending = asyncio.ensure_future(pool.execute("SET", key, "after"))
            await asyncio.sleep(0.1)
            assert not pending.done()
            replica.command("CLUSTER", "FAILOVER", "TAKEOVER")
            await _until(lambda: victim.role() == "slave", 20, "the old master to be demoted")
            await _until(lambda: pool.slot_owner(slot) == replica.address, 20,
                         "the pool to route the slot to the new master")
        finally:
            victim.command("CLIENT", "UNPAUSE")
        assert await asyncio.wait_for(pending, 10) == b"OK"
        assert replica.command("GET", key) in (b"after", "after")
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_frozen_master_resumed_right_after_the_switch_never_acks(
    local_cluster_factory: ClusterFactory,
) -> None:
    """SETs written to a frozen master; its replica takes over; the pool switches;
    the old master resumes at once: each SET is on the new master, or failed with
    may_have_executed=True, none acknowledged and missing."""
    cluster = local_cluster_factory()
    victim = cluster.masters[0]
    (replica,) = cluster.replicas_of(victim)
    keys = [_key_on(cluster, victim, f"frozen{i}") for i in range(10)]
    slot = key_slot(keys[0])
    pool = await create_cluster_pool(cluster.startup_nodes)
    results: dict[str, object] = {}

    async def one(key: str) -> None:
        try:
            results[key] = await pool.execute("SET", key, "fresh")
        except RedisError as exc:
            results[key] = exc

    try:
        await asyncio.gather(*(pool.execute("SET", k, "old") for k in keys))
        cluster.pause(victim)
        try:
            tasks = [asyncio.ensure_future(one(k)) for k in keys]
            await asyncio.sleep(0.1)
            replica.command("CLUSTER", "FAILOVER", "TAKEOVER")
            await _until(lambda: pool.slot_owner(slot) == replica.address, 20,
                         "the pool to route the slot to the new master")
        finally:
            cluster.resume(victim)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await _until(lambda: victim.role() == "slave", 20, "the old master to rejoin")
        for key in keys:
            result = results[key]
            if isinstance(result, RedisError):
                assert getattr(result, "may_have_executed", None) is True, (key, result)
            else:
                assert replica.command("GET", key) in (b"fresh", "fresh"), (
                    f"{key} acknowledged and lost: {result!r}"
                )
    finally:
        pool.close()
        await pool.wait_closed()
