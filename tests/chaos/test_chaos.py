"""Chaos: a write/read/pub-sub workload per topology while seeded random faults hit it.

Per topology a fresh topology is started; writers issue fresh ``SET`` s with
unique values, readers ``GET`` recent keys, a publisher sends sequence numbers
to one subscriber, all through one pool, each operation bounded by
``asyncio.wait_for(…, 20 s)``.  A scheduler (``random.Random(seed)``, the seed
is printed) injects one fault at a time for ``CLUSTERMGR_CHAOS_SECONDS``
(default 25 s), healing in between.  Then everything is accounted for (see
:mod:`chaos_helpers`) and one summary line per topology is printed.

Which faults may lose an acknowledged write, and why (``Fault.loss_windows``):

* SIGKILL of a (cluster or sentinel) master: writes it acknowledged in the
  second before it died may not have reached the replica that is promoted
  (replication is asynchronous).
* SIGSTOP of a cluster master long enough for its replica to be promoted:
  writes sent to it just before or while it was stopped are acknowledged by
  it after SIGCONT, before it learns it was demoted; its new master then
  resynchronises it without them.
* ``SENTINEL FAILOVER``: writes acknowledged by the old master after the
  command and before the new master is announced -- the pool is meant to
  fence the old master, so this bucket is reported on its own and should be 0.
* Sentinel, measured rather than injected (``no-replica``): a watcher samples
  every data node's ``INFO replication``; while the master has no replica
  online and in sync, whatever it acknowledges has no second copy, and a
  later promotion (after repeated kills of non-persistent nodes) loses it.
  ``clustermgr.replication.WaitReplicas`` refuses such acknowledgements.

Pub/sub: a message may be missed inside a disconnect the pool logs, and, on
a cluster, around a killed or stopped node (the cluster bus forwards PUBLISH
at most once; a broken bus link drops messages with no client disconnect).

Everything else (standalone kill+restart with ``appendfsync always``, proxy
drops/stalls/latency/one-way cuts, CLIENT KILL, graceful CLUSTER FAILOVER,
slot migrations, short pauses, sentinel restarts) must lose nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from chaos_helpers import (
    FaultLog,
    PubSubEvents,
    Workload,
    account,
    chaos_seconds,
    chaos_seed,
    open_fds,
)

from clustermgr import create_pool
from clustermgr.cluster import create_cluster_pool
from clustermgr.sentinel import create_sentinel_pool
from clustermgr.slots import key_slot
from clustermgr.testing import (
    DIRECTIONS,
    FaultProxy,
    LocalCluster,
    LocalSentinelGroup,
    LocalStandalone,
    wait_until,
)

SECONDS = chaos_seconds()
LAG = 1.0  # how far before a SIGKILL/SIGSTOP an acknowledged write may still be unreplicated

pytestmark = [pytest.mark.chaos, pytest.mark.fault, pytest.mark.timeout(int(SECONDS * 2 + 300))]

logger = logging.getLogger("chaos")

FaultFn = Callable[[Any, random.Random], Awaitable[None]]


def _slots_of(cluster: LocalCluster, port: int) -> frozenset[int]:
    return frozenset(
        s for r in cluster.slots() if r.master_port == port for s in range(r.start, r.end + 1)
    )


async def _run(
    name: str,
    capsys: pytest.CaptureFixture[str],
    make_pool: Callable[[], Awaitable[Any]],
    faults: Sequence[tuple[str, int, FaultFn]],
    heal: Callable[[], None],
    slot_of: Callable[[str], int | None] = lambda _key: None,
    holder: dict[str, Any] | None = None,
    watch: Callable[[FaultLog], Awaitable[None]] | None = None,
    bus_faults: tuple[str, ...] = (),
) -> None:
    seed = chaos_seed()
    rng = random.Random(seed)
    with capsys.disabled():
        print(f"\nCHAOS {name}: seed={seed} (replay with CLUSTERMGR_CHAOS_SEED={seed})")
    events = PubSubEvents()
    root = logging.getLogger("clustermgr")
    old_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(events)
    log = FaultLog()
    try:
        await asyncio.sleep(0)
        tasks_before = len(asyncio.all_tasks())
        fds_before = open_fds()
        pool = await make_pool()
        workload = Workload(pool, f"chaos:{name}:{uuid.uuid4().hex[:6]}", slot_of=slot_of)
        if holder is not None:
            holder["workload"] = workload
        await workload.start()
        watcher = asyncio.ensure_future(watch(log)) if watch is not None else None
        await asyncio.sleep(1.0)
        deadline = time.monotonic() + SECONDS
        kinds = list(faults)
        for _ in range(10_000):
            if time.monotonic() >= deadline:
                break
            kind, _weight, inject = rng.choices(kinds, weights=[w for _, w, _ in kinds])[0]
            fault = log.begin(kind, "")
            logger.info("fault %s", kind)
            await inject(fault, rng)
            fault.end = time.monotonic()
            await asyncio.sleep(rng.uniform(0.3, 1.5))
        await asyncio.to_thread(heal)
        await asyncio.sleep(2.0)  # let the pool converge on the healed topology
        await workload.stop()
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        still_subscribed = await workload.check_still_subscribed()
        report = await account(
            name, seed, SECONDS, pool, workload, log, events, still_subscribed,
            (0, 0), (0, 0), bus_faults=bus_faults,
        )
        await workload.close_subscriber()
        pool.close()
        await pool.wait_closed()
        tasks_after = fds_after = 0
        for _ in range(50):  # sockets closed by the loop a tick later
            await asyncio.sleep(0.05)
            tasks_after, fds_after = len(asyncio.all_tasks()), open_fds()
            if tasks_after <= tasks_before and fds_after <= fds_before:
                break
        report.tasks = (tasks_before, tasks_after)
        report.fds = (fds_before, fds_after)
    finally:
        root.removeHandler(events)
        root.setLevel(old_level)
    with capsys.disabled():
        print(report.line())
        for fault in log.faults:
            print(f"  {fault.start - log.faults[0].start:7.2f}s +{fault.end - fault.start:5.2f}s "
                  f"{fault.kind} {fault.target}")
    problems = report.problems()
    assert not problems, "\n".join(problems)


# -- standalone, behind a FaultProxy, AOF with appendfsync always ---------------------------


async def test_chaos_standalone(
    local_standalone_factory: Callable[..., LocalStandalone],
    capsys: pytest.CaptureFixture[str],
) -> None:
    topology = local_standalone_factory(config={"appendonly": "yes", "appendfsync": "always"})
    server = topology.server
    with FaultProxy(topology.address, name="chaos-proxy") as proxy:

        async def kill_restart(fault: Any, rng: random.Random) -> None:
            fault.target = f"pid {server.pid}"
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            await asyncio.to_thread(server.restart)

        async def pause(fault: Any, rng: random.Random) -> None:
            await asyncio.to_thread(server.pause)
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            await asyncio.to_thread(server.resume)

        async def client_kill(fault: Any, rng: random.Random) -> None:
            fault.target = rng.choice(["normal", "pubsub"])
            await asyncio.to_thread(server.command, "CLIENT", "KILL", "TYPE", fault.target)

        async def drop(fault: Any, rng: random.Random) -> None:
            fault.target = f"{proxy.drop()} connections"

        async def refuse(fault: Any, rng: random.Random) -> None:
            proxy.drop(refuse=True)
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            proxy.pass_through()

        async def stall(fault: Any, rng: random.Random) -> None:
            with proxy.stalled():
                await asyncio.sleep(rng.uniform(0.3, 2.5))

        async def latency(fault: Any, rng: random.Random) -> None:
            with proxy.delayed(rng.uniform(0.01, 0.15)):
                await asyncio.sleep(rng.uniform(0.5, 2.0))

        async def cut(fault: Any, rng: random.Random) -> None:
            fault.target = rng.choice(DIRECTIONS)
            with proxy.cut_off(fault.target):
                await asyncio.sleep(rng.uniform(0.3, 1.5))

        def heal() -> None:
            proxy.pass_through()
            if server.is_paused:
                server.resume()
            if not server.is_running:
                server.restart()

        await _run(
            "standalone", capsys,
            lambda: create_pool(proxy.address, minsize=2, maxsize=4,
                                create_connection_timeout=2),
            [("kill+restart", 2, kill_restart), ("sigstop", 2, pause),
             ("client-kill", 2, client_kill), ("proxy-drop", 2, drop),
             ("proxy-refuse", 1, refuse), ("proxy-stall", 2, stall),
             ("proxy-latency", 1, latency), ("proxy-cut", 2, cut)],
            heal,
        )


# -- cluster ---------------------------------------------------------------------------------


async def test_chaos_cluster(
    local_cluster_factory: Callable[..., LocalCluster],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=1, node_timeout_ms=1000)

    def victim(rng: random.Random) -> Any:
        masters = [m for m in cluster.masters if cluster.replicas_of(m)]
        return rng.choice(masters)

    async def kill_master(fault: Any, rng: random.Random) -> None:
        node = await asyncio.to_thread(victim, rng)
        slots = await asyncio.to_thread(_slots_of, cluster, node.port)
        fault.target = f"{node.name} :{node.port} pid {node.pid}"
        killed = time.monotonic()
        await asyncio.to_thread(node.kill)
        fault.loss_windows.append((
            killed - LAG, killed, slots,
            "acked by the master <=1s before SIGKILL, not yet replicated to the promoted replica",
        ))
        await asyncio.to_thread(cluster.wait_ok, 30)
        await asyncio.to_thread(cluster.restart, node, wait_ok=True, timeout=30)

    async def pause_master(fault: Any, rng: random.Random) -> None:
        node = await asyncio.to_thread(victim, rng)
        long = rng.random() < 0.4
        fault.target = f"{node.name} :{node.port} {'until failover' if long else 'short'}"
        slots = await asyncio.to_thread(_slots_of, cluster, node.port)
        first = min(slots)
        paused = time.monotonic()
        await asyncio.to_thread(node.pause)
        if long:
            def promoted() -> bool:
                try:
                    return cluster.node_for_slot(first).port != node.port
                except (OSError, LookupError, RuntimeError):
                    return False

            await asyncio.to_thread(
                wait_until, promoted, timeout=30, what="replica promotion", interval=0.1
            )
        else:
            await asyncio.sleep(rng.uniform(0.2, 0.6))  # below cluster-node-timeout
        await asyncio.to_thread(node.resume)
        if long:
            fault.loss_windows.append((
                paused - LAG, time.monotonic() + 1.0, slots,
                "sent to the master just before/while SIGSTOPped; it acked them after SIGCONT "
                "before learning its replica had been promoted",
            ))
        await asyncio.to_thread(cluster.wait_ok, 30)

    async def failover(fault: Any, rng: random.Random) -> None:
        replica = rng.choice(await asyncio.to_thread(lambda: cluster.replicas))
        fault.target = f"{replica.name} :{replica.port}"
        await asyncio.to_thread(cluster.failover, replica, timeout=30)

    async def client_kill(fault: Any, rng: random.Random) -> None:
        node = rng.choice(cluster.available_nodes)
        kind = rng.choice(["normal", "pubsub"])
        fault.target = f"{node.name} {kind}"
        await asyncio.to_thread(node.command, "CLIENT", "KILL", "TYPE", kind)

    async def migrate(fault: Any, rng: random.Random) -> None:
        acked = holder["workload"].stats.acked
        recent = [k for _, k in zip(range(50), reversed(acked), strict=False)]
        slot = key_slot(rng.choice(recent)) if recent else rng.randrange(16384)

        def move() -> int:
            owner = cluster.node_for_slot(slot)
            target = rng.choice([m for m in cluster.masters if m.port != owner.port])
            fault.target = f"slot {slot} :{owner.port} -> :{target.port}"
            return cluster.migrate_slot(slot, target, timeout=30)

        moved = await asyncio.to_thread(move)
        fault.target += f" ({moved} keys)"

    def heal() -> None:
        for node in cluster.nodes:
            if node.is_paused:
                node.resume()
            if not node.is_running:
                node.restart()
        cluster.wait_ok(30)

    holder: dict[str, Any] = {}

    await _run(
        "cluster", capsys,
        lambda: create_cluster_pool(cluster.startup_nodes, minsize=1, maxsize=4),
        [("kill-master", 2, kill_master), ("sigstop-master", 2, pause_master),
         ("cluster-failover", 2, failover), ("client-kill", 2, client_kill),
         ("slot-migration", 2, migrate)],
        heal, slot_of=key_slot, holder=holder, bus_faults=("kill-master", "sigstop-master"),
    )


# -- sentinel --------------------------------------------------------------------------------


async def test_chaos_sentinel(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
    capsys: pytest.CaptureFixture[str],
) -> None:
    group = local_sentinel_factory(replicas=1, sentinels=3)

    async def kill_master(fault: Any, rng: random.Random) -> None:
        old = await asyncio.to_thread(lambda: group.master)
        fault.target = f"{old.name} :{old.port} pid {old.pid}"
        killed = time.monotonic()
        await asyncio.to_thread(old.kill)
        fault.loss_windows.append((
            killed - LAG, killed, None,
            "acked by the master <=1s before SIGKILL, not yet replicated to the promoted replica",
        ))
        new = await asyncio.to_thread(group.wait_for_master, not_port=old.port, timeout=40)
        await asyncio.to_thread(old.restart)
        await asyncio.to_thread(group.demote, old, new, timeout=30)

    async def sentinel_failover(fault: Any, rng: random.Random) -> None:
        old = await asyncio.to_thread(lambda: group.master)
        started = time.monotonic()
        new = await asyncio.to_thread(group.failover, timeout=40)
        fault.target = f":{old.port} -> :{new.port}"
        fault.loss_windows.append((
            started, time.monotonic(), None,
            "acked by the old master after SENTINEL FAILOVER, before the new master was "
            "announced (should be 0: the pool fences the old master)",
        ))
        await asyncio.to_thread(group.demote, old, new, timeout=30)

    async def pause_master(fault: Any, rng: random.Random) -> None:
        master = await asyncio.to_thread(lambda: group.master)
        fault.target = f"{master.name} :{master.port}"
        await asyncio.to_thread(master.pause)
        await asyncio.sleep(rng.uniform(0.2, 0.5))  # below down-after-milliseconds
        await asyncio.to_thread(master.resume)

    async def client_kill(fault: Any, rng: random.Random) -> None:
        master = await asyncio.to_thread(lambda: group.master)
        kind = rng.choice(["normal", "pubsub"])
        fault.target = f"{master.name} {kind}"
        await asyncio.to_thread(master.command, "CLIENT", "KILL", "TYPE", kind)

    async def kill_sentinel(fault: Any, rng: random.Random) -> None:
        sentinel = rng.choice(group.available_sentinels)
        fault.target = f"{sentinel.name} pid {sentinel.pid}"
        await asyncio.to_thread(sentinel.kill)
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        await asyncio.to_thread(sentinel.restart)

    def heal() -> None:
        for server in group.servers:
            if server.is_paused:
                server.resume()
            if not server.is_running:
                server.restart()
        group.wait_ready(40)

    def unreplicated_masters() -> list[str]:
        """Data nodes answering as master with no replica online and in sync."""
        found = []
        for server in group.data_nodes:
            if not server.is_available:
                continue
            try:
                info = server.info("replication")
            except Exception:
                continue
            if info.get("role") != "master":
                continue
            replicas = [v for k, v in info.items() if k.startswith("slave") and k[5:].isdigit()]
            if not any("state=online" in r and ("lag=0" in r or "lag=1" in r) for r in replicas):
                found.append(f":{server.port}")
        return found

    async def watch_replication(log: FaultLog) -> None:
        """Record windows in which a master acknowledged writes no replica had.

        Any later promotion loses such writes (Sentinel replication is
        asynchronous, and the pool cannot see it); WaitReplicas refuses them.
        """
        fault = None
        while True:
            alone = await asyncio.to_thread(unreplicated_masters)
            now = time.monotonic()
            if alone and fault is None:
                fault = log.begin("no-replica", ",".join(alone))
                fault.loss_windows.append((now - 0.2, now, None, (
                    "acked by a master with no replica online (after repeated kills the "
                    "next promoted node was not replicating from it)")))
            elif alone and fault is not None:
                start, _end, slots, why = fault.loss_windows[-1]
                fault.loss_windows[-1] = (start, now, slots, why)
            elif not alone and fault is not None:
                start, _end, slots, why = fault.loss_windows[-1]
                fault.loss_windows[-1] = (start, now, slots, why)
                fault.end = now
                fault = None
            await asyncio.sleep(0.1)

    await _run(
        "sentinel", capsys,
        lambda: create_sentinel_pool(group.sentinel_addresses, group.service, maxsize=4),
        [("kill-master", 2, kill_master), ("sentinel-failover", 2, sentinel_failover),
         ("sigstop-master", 2, pause_master), ("client-kill", 2, client_kill),
         ("kill-sentinel", 1, kill_sentinel)],
        heal,
        watch=watch_replication,
    )
