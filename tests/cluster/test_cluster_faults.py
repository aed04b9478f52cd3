"""ClusterPool under failover, SIGKILL and slot migration (each test owns its cluster)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from clustermgr.cluster import ClusterPool, OutcomeUnknownError, create_cluster_pool, key_slot
from clustermgr.errors import RedisError
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.process import LocalServer

logger = logging.getLogger("tests.cluster.faults")

ClusterFactory = Callable[..., LocalCluster]

pytestmark = pytest.mark.fault


class Load:
    """``tasks`` workers doing SET then GET on their own key, checking every value."""

    def __init__(self, pool: ClusterPool, keys: list[str]) -> None:
        self.pool = pool
        self.keys = keys
        self.errors: list[tuple[str, BaseException]] = []
        self.wrong: list[tuple[str, Any]] = []
        self.successes: dict[str, list[float]] = {k: [] for k in keys}
        self.acked: dict[str, int] = {}
        self.stopped = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._worker(k)) for k in self.keys]

    async def stop(self) -> None:
        self.stopped = True
        await asyncio.gather(*self._tasks)

    async def _worker(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        attempted = -1
        counter = 0
        while not self.stopped:
            counter += 1
            attempted = counter
            try:
                await self.pool.execute(b"SET", key, f"{key}={counter}")
                self.acked[key] = counter
                value = await self.pool.execute(b"GET", key)
            except RedisError as exc:
                self.errors.append((key, exc))
                await asyncio.sleep(0.01)
                continue
            text = value.decode() if isinstance(value, bytes) else value
            prefix, _, number = (text or "").partition("=")
            if prefix != key or not number.isdigit() or int(number) > attempted:
                self.wrong.append((key, value))
            self.successes[key].append(loop.time())
            await asyncio.sleep(0.002)

    def successes_after(self, moment: float) -> dict[str, float]:
        """First success time after ``moment`` for each key that had one."""
        return {k: min(t for t in ts if t > moment) for k, ts in self.successes.items()
                if any(t > moment for t in ts)}


async def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_sigkill_master_under_load(local_cluster_factory: ClusterFactory) -> None:
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes, retry_timeout=15.0)
    try:
        victim = cluster.masters[0]
        (replica,) = cluster.replicas_of(victim)
        keys = [f"kill:{i}" for i in range(50)]
        on_victim = [k for k in keys if cluster.node_for_key(k).port == victim.port]
        assert on_victim
        load = Load(pool, keys)
        load.start()
        await asyncio.sleep(0.5)
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        cluster.kill(victim)
        await _wait_for(lambda: replica.role() == "master", 20, "the replica's promotion")
        promoted_at = loop.time()
        await _wait_for(
            lambda: set(load.successes_after(promoted_at)) == set(keys), 20,
            "every task to succeed after the promotion",
        )
        await load.stop()
        first = min(load.successes_after(promoted_at)[k] for k in on_victim)
        logger.warning(
            "SIGKILL: promotion %.2fs after the kill; first success on the promoted master "
            "%.0f ms after promotion", promoted_at - killed_at, (first - promoted_at) * 1000,
        )
        assert not load.wrong
        for key, exc in load.errors:
            # Only writes in flight at the kill may fail, saying they may have been applied.
            assert key in on_victim
            assert isinstance(exc, OutcomeUnknownError), repr(exc)
            assert exc.may_have_executed and "may have been applied" in str(exc)
    finally:
        pool.close()
        await pool.wait_closed()


ROUTE_SWITCH_BOUND = 10.0
"""Seconds from the failover's end until the pool routes the shard to the new master
(it learns the switch from the old master's MOVED replies, then reloads the map)."""

RETIRE_BOUND = 5.0 + 2.0
"""A retired node pool is closed within the pool's grace for in-flight replies
(5 s) plus a margin."""


def _rejected_calls(node: LocalServer) -> int:
    """Commands ``node`` refused with a redirection (its commandstats ``rejected_calls``)."""
    total = 0
    for name, stats in node.info("commandstats").items():
        if name.startswith("cmdstat_"):
            fields = dict(part.split("=", 1) for part in stats.split(","))
            total += int(fields.get("rejected_calls", 0))
    return total


async def test_manual_failover_under_load_has_no_errors(
    local_cluster_factory: ClusterFactory,
) -> None:
    """The contract of a switch: no error and no lost write; within a bound the shard
    is routed to the new master, and from that step on the old master gets no command
    and drops out of ``node_pools``; its pool is closed within the retire grace."""
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes)
    loop = asyncio.get_running_loop()
    try:
        master = cluster.masters[1]
        (replica,) = cluster.replicas_of(master)
        keys = [f"fo:{i}" for i in range(50)]
        slots = {key_slot(k) for k in keys if cluster.node_for_key(k).port == master.port}
        assert slots
        old_pool = pool.node_pools[master.address]
        load = Load(pool, keys)
        load.start()
        await asyncio.sleep(0.3)
        await asyncio.to_thread(cluster.failover, replica)
        moment = loop.time()
        await _wait_for(
            lambda: all(pool.slot_owner(slot) == replica.address for slot in slots),
            ROUTE_SWITCH_BOUND, "the shard's routes to point to the new master",
        )
        # Routes and node pools change in one step: the old master is out at once.
        assert master.address not in pool.node_pools
        switched = loop.time()
        # Once the replies it was still waiting for are in, nothing reaches the old master.
        await _wait_for(lambda: old_pool.in_flight == 0, RETIRE_BOUND, "in-flight replies")
        rejected = _rejected_calls(master)
        await _wait_for(
            lambda: set(load.successes_after(switched)) == set(keys), 10,
            "traffic on every key after the switch",
        )
        await asyncio.sleep(0.3)
        assert _rejected_calls(master) == rejected, "commands routed to the old master"
        await _wait_for(
            lambda: old_pool.closed and old_pool.size == 0, RETIRE_BOUND,
            "the old master's pool to be closed",
        )
        await load.stop()
        logger.warning("manual failover: routes switched %.0f ms after the failover ended",
                       (switched - moment) * 1000)
        assert load.errors == []
        assert load.wrong == []
        assert {addr[1] for addr in pool.node_pools} <= {m.port for m in cluster.masters}
    finally:
        pool.close()
        await pool.wait_closed()


async def test_slot_migration_under_load(local_cluster_factory: ClusterFactory) -> None:
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes)
    try:
        keys = [f"{{mig}}:{i}" for i in range(50)]
        slot = key_slot(keys[0])
        # Extra keys so the migration takes several MIGRATE batches.
        extra = [f"{{mig}}:extra:{i}" for i in range(400)]
        await pool.execute(b"MSET", *(x for k in extra for x in (k, k)))
        source = cluster.node_for_slot(slot)
        target = next(m for m in cluster.masters if m.port != source.port)
        load = Load(pool, keys)
        load.start()
        multi_errors: list[BaseException] = []

        async def multi_key_reader() -> None:
            while not load.stopped:
                try:
                    values = await pool.execute(b"MGET", *extra[:5])
                    assert values == [k.encode() for k in extra[:5]]
                except RedisError as exc:
                    multi_errors.append(exc)
                await asyncio.sleep(0.005)

        reader = asyncio.ensure_future(multi_key_reader())
        await asyncio.sleep(0.2)
        migration = await asyncio.to_thread(cluster.begin_migration, slot, target)
        for _ in range(100):  # bounded; traffic meets a half-moved slot: ASK / TRYAGAIN
            if not await asyncio.to_thread(migration.move_batch, 40):
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(migration.finish)
        moment = asyncio.get_running_loop().time()
        await _wait_for(
            lambda: set(load.successes_after(moment)) == set(keys), 10, "traffic after migration"
        )
        await load.stop()
        await reader
        assert load.errors == [] and multi_errors == []
        assert load.wrong == []
        assert pool.slot_owner(slot) == target.address
        # Nothing lost: every key is on the target with its last acknowledged value.
        assert await pool.execute(b"MGET", *extra) == [k.encode() for k in extra]
        for key in keys:
            assert await pool.execute(b"GET", key) == f"{key}={load.acked[key]}".encode()
        count = target.command("CLUSTER", "COUNTKEYSINSLOT", slot)
        assert count == len(keys) + len(extra)
        assert source.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    finally:
        pool.close()
        await pool.wait_closed()


async def test_sharded_subscriber_survives_slot_move_and_failover(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes)
    try:
        name = "events{shard-chan}"
        slot = key_slot(name)
        await pool.execute_pubsub(b"SSUBSCRIBE", name)
        channel = pool.pubsub_shard_channels[name.encode()]
        received: list[bytes] = []
        stop = False

        async def publisher() -> None:
            n = 0
            while not stop:
                n += 1
                try:
                    await pool.execute(b"SPUBLISH", name, str(n))
                except RedisError as exc:  # pragma: no cover - reported below
                    received.append(repr(exc).encode())
                await asyncio.sleep(0.01)

        async def consumer() -> None:
            while True:
                received.append(await channel.get())

        pub = asyncio.ensure_future(publisher())
        sub = asyncio.ensure_future(consumer())
        await _wait_for(lambda: len(received) >= 5, 5, "first messages")

        # 1. The channel's slot moves to another master.
        target = next(m for m in cluster.masters if m.port != cluster.node_for_slot(slot).port)
        await asyncio.to_thread(cluster.migrate_slot, slot, target)
        mark = len(received)
        await _wait_for(lambda: len(received) >= mark + 10, 10, "messages after the slot move")
        assert pool.slot_owner(slot) == target.address

        # 2. The new owner fails over to its replica.
        (replica,) = cluster.replicas_of(target)
        await asyncio.to_thread(cluster.failover, replica)
        mark = len(received)
        await _wait_for(lambda: len(received) >= mark + 10, 10, "messages after the failover")

        stop = True
        await pub
        sub.cancel()
        await asyncio.gather(sub, return_exceptions=True)
        assert channel is pool.pubsub_shard_channels[name.encode()]
        assert all(m.isdigit() for m in received), [m for m in received if not m.isdigit()]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_paused_master_is_detected_by_read_timeout(
    local_cluster_factory: ClusterFactory,
) -> None:
    """A SIGSTOPped master: its commands wait for the failover instead of hanging."""
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(cluster.startup_nodes, read_timeout=0.5, retry_timeout=20)
    try:
        victim = cluster.node_for_key("paused:key")
        other_key = next(
            f"other:{i}" for i in range(100) if cluster.node_for_key(f"other:{i}") != victim
        )
        await pool.execute("SET", "paused:key", "before")
        loop = asyncio.get_running_loop()
        cluster.pause(victim)
        try:
            started = loop.time()
            assert await pool.execute("SET", other_key, "ok") == b"OK"
            assert loop.time() - started < 0.5  # other shards are not held up
            started = loop.time()
            value = await asyncio.wait_for(pool.execute("GET", "paused:key"), 25)
            waited = loop.time() - started
            logger.info("GET on a paused master's slot answered after %.2f s (by the promoted "
                        "replica)", waited)
            assert value == b"before"
            # The launcher asks one node, which may learn of the promotion a moment later.
            await _wait_for(lambda: cluster.node_for_key("paused:key") != victim, 5,
                            "the cluster to name the promoted replica")
        finally:
            cluster.resume(victim)
    finally:
        pool.close()
        await pool.wait_closed()
