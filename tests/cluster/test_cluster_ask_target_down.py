"""A slot migration whose target died: commands for keys already moved are held.

The source of a half-done migration answers ``ASK <slot> <target>`` for the keys
it no longer has. When the target is SIGKILLed those commands cannot run
anywhere until the migration moves on, and they wait for that (bounded by
``retry_timeout``) like any command whose node is down, instead of spending
their redirect budget in under a second.

What makes the migration move on differs by server. Redis 7.0 keeps the source
pointing at the dead node after its replica is promoted (the replica has the
moved keys but no IMPORTING state: it answers ``ASKING`` + the command with
MOVED to the source), so an operator must point the migration at the promoted
replica (``CLUSTER SETSLOT``). Valkey 8 replicates the migration state and
points the source at the promoted replica by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import AskTargetUnreachableError
from clustermgr.testing.cluster import LocalCluster, SlotMigration
from clustermgr.testing.resp import RespError

ClusterFactory = Callable[..., LocalCluster]

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]

FAILED_BEFORE = 0.8
"""Seconds after which these commands used to fail (their redirects spent)."""


def _half_migrated(cluster: LocalCluster) -> tuple[SlotMigration, list[str]]:
    """Begin migrating the slot of ``{m}`` and move half of its 10 keys; the moved ones."""
    slot = cluster.keyslot("{m}")
    source = cluster.node_for_slot(slot)
    target = next(m for m in cluster.masters if m.port != source.port)
    keys = [f"{{m}}:{i}" for i in range(10)]
    for key in keys:
        source.command("SET", key, "v")
    migration = cluster.begin_migration(slot, target)
    migration.move_batch(5)
    left = {str(k) for k in cluster.node_for_slot(slot).command(
        "CLUSTER", "GETKEYSINSLOT", slot, 100)}
    moved = [k for k in keys if k not in left]
    assert len(moved) == 5
    return migration, moved


def _asked_port(migration: SlotMigration, key: str) -> int | None:
    """The port the source sends ``key`` to (ASK), None if it serves it itself."""
    try:
        migration.source.command("GET", key)
    except RespError as exc:
        if str(exc).startswith("ASK "):
            return int(str(exc).rsplit(":", 1)[1])
        raise
    return None


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


async def test_moved_keys_wait_for_a_dead_target_until_the_migration_moves_on(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes, retry_timeout=30)
    try:
        migration, moved = _half_migrated(cluster)
        assert await pool.execute("GET", moved[0]) == b"v"  # ASK followed while it is alive
        (replica,) = cluster.replicas_of(migration.target)
        cluster.kill(migration.target)
        read = pool.execute("GET", moved[0])
        write = pool.execute("SET", moved[1], "new")
        await asyncio.sleep(FAILED_BEFORE + 1.0)
        assert not read.done() and not write.done(), "a command gave up with its migration"
        await asyncio.to_thread(_wait, lambda: replica.role() == "master", 20, "the promotion")
        await asyncio.to_thread(cluster.wait_ok, 20)
        if _asked_port(migration, moved[0]) == migration.target.port:
            # Redis 7: the migration still names the dead node; the commands wait
            # until the operator points it at the promoted replica.
            assert not read.done() and not write.done()
            replica.command("CLUSTER", "SETSLOT", migration.slot, "IMPORTING",
                            migration.source_id)
            migration.source.command("CLUSTER", "SETSLOT", migration.slot, "MIGRATING",
                                     cluster.node_id(replica))
        assert _asked_port(migration, moved[0]) == replica.port
        assert await asyncio.wait_for(read, 5) == b"v"
        assert await asyncio.wait_for(write, 5) == b"OK"
        assert await pool.execute("GET", moved[1]) == b"new"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_moved_keys_fail_at_retry_timeout_naming_the_dead_target(
    local_cluster_factory: ClusterFactory,
) -> None:
    # No failure is detected before the budget ends (no FAIL flag, no CLUSTERDOWN).
    cluster = local_cluster_factory(node_timeout_ms=10_000)
    retry_timeout = 3.0
    pool = await create_cluster_pool(cluster.startup_nodes, retry_timeout=retry_timeout)
    loop = asyncio.get_running_loop()
    try:
        migration, moved = _half_migrated(cluster)
        assert await pool.execute("GET", moved[0]) == b"v"
        cluster.kill(migration.target)
        started = loop.time()
        results: list[Any] = await asyncio.gather(
            pool.execute("GET", moved[0]), pool.execute("SET", moved[1], "new"),
            return_exceptions=True,
        )
        elapsed = loop.time() - started
        assert elapsed >= retry_timeout - 0.1, f"gave up after {elapsed:.2f}s"
        target = migration.target.address
        for error in results:
            assert isinstance(error, AskTargetUnreachableError), repr(error)
            assert error.may_have_executed is False
            assert (error.slot, error.address) == (migration.slot, target)
            assert f"{target[0]}:{target[1]}" in str(error)
    finally:
        pool.close()
        await pool.wait_closed()
