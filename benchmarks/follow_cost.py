"""``python -m benchmarks.follow_cost``: what following one failover costs 50 cluster pools.

A benchmark, not a test: it prints figures. It starts a local cluster of
``--masters`` masters + as many replicas (default 15 + 15), opens ``--pools``
:class:`~clustermgr.cluster.ClusterPool` s (default 50) in this one process,
each given every node as a startup node and sending light traffic (a SET every
``--every`` seconds, not waiting for the previous one, keys over all slots),
then SIGKILLs the master owning slot 0 (by PID) and reports, per pool and per
failover:

* **topology queries**: ``CLUSTER SHARDS``/``SLOTS``/``NODES`` (and, apart,
  ``CLUSTER INFO``) the pools sent, from ``INFO commandstats`` deltas on the
  surviving nodes (nothing else sends cluster commands during the window: the
  benchmark watches the promotion with ``ROLE`` only), divided by the number
  of pools; and the pools' own reload counts (``stats().refreshes``);
* **slot map bytes**: those calls times each node's reply size for the
  command (measured after the window), in total;
* **convergence**: when each pool routes slot 0 to the promoted replica
  (``slot_owner(0)``), after the kill and after the replica reported
  ``role:master``; the last of the pools is the figure;
* **dead node**: connection attempts to the killed node's address per pool
  (counted by this benchmark's event loop, whose ``create_connection`` notes
  each attempt and the pool it serves), over the whole window, and per second.

Periodic reloads are off by default (``--period``), so that only what the
failover caused is counted; with the default 30 s period each pool adds one
reload every 24-36 s regardless. Goal (issue 14): <= 3 topology queries per
pool per failover, and attempts to the dead node bounded and backed off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import os
import random
import resource
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis

from clustermgr.cluster import ClusterPool, RefreshOptions, create_cluster_pool
from clustermgr.slots import key_slot
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.process import LocalServer

__all__ = ["main"]

GOAL_QUERIES = 3.0
TOPOLOGY = ("cluster|shards", "cluster|slots", "cluster|nodes")
COUNTED = (*TOPOLOGY, "cluster|info")
WARMUP = 2.0  # seconds of traffic before the kill
SETTLE = 3.0  # seconds of traffic after the last pool converged
OBSERVE = 10.0  # the window lasts at least this long after the kill
CONVERGE_BUDGET = 40.0

_POOL: contextvars.ContextVar[int] = contextvars.ContextVar("follow_cost_pool", default=-1)


class _CountingLoop(asyncio.SelectorEventLoop):
    """An event loop that notes every TCP connection attempt: (time, host, port, pool)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts: list[tuple[float, Any, Any, int]] = []

    async def create_connection(
        self, protocol_factory: Any, host: Any = None, port: Any = None, **kwargs: Any
    ) -> Any:
        self.attempts.append((self.time(), host, port, _POOL.get()))
        return await super().create_connection(protocol_factory, host, port, **kwargs)


@dataclass
class _Traffic:
    """What one pool's traffic saw."""

    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    pending: set[asyncio.Future[Any]] = field(default_factory=set)


class _Watcher(threading.Thread):
    """Polls the replica's ROLE every 5 ms from a thread; notes when it is master."""

    def __init__(self, replica: LocalServer) -> None:
        super().__init__(daemon=True)
        self.replica = replica
        self.promoted_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        conn = self.replica.connect()
        try:
            while not self.stop.is_set() and self.promoted_at is None:
                reply = conn.command("ROLE")
                if isinstance(reply, list) and reply and reply[0] in ("master", b"master"):
                    self.promoted_at = time.monotonic()
                time.sleep(0.005)
        finally:
            conn.close()


def _keys(count: int) -> list[bytes]:
    return [b"fc:%d" % i for i in range(count)]


def _slot0_key() -> bytes:
    n = 0
    while key_slot(b"fc0:{%d}" % n) != 0:
        n += 1
    return b"fc0:{%d}" % n


def _calls(node: LocalServer) -> dict[str, int]:
    stats = node.info("commandstats")
    out = {}
    for name in COUNTED:
        value = stats.get(f"cmdstat_{name}", "")
        fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        out[name] = int(fields.get("calls", 0))
    return out


def _reply_bytes(node: LocalServer, *args: str) -> int:
    """Size in bytes of ``node``'s RESP reply to ``args``."""
    reader = hiredis.Reader()
    command: tuple[Any, ...] = args
    size = 0
    with socket.create_connection(node.address, timeout=5) as sock:
        sock.sendall(hiredis.pack_command(command))
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{node!r} closed before replying to {args}")
            size += len(chunk)
            reader.feed(chunk)
            if reader.gets() is not False:
                return size


async def _traffic(pool: ClusterPool, keys: list[bytes], every: float,
                   stop: asyncio.Event, seen: _Traffic) -> None:
    def done(future: asyncio.Future[Any]) -> None:
        seen.pending.discard(future)
        if future.cancelled():
            seen.errors["cancelled"] += 1
        elif future.exception() is not None:
            seen.errors[type(future.exception()).__name__] += 1
        else:
            seen.ok += 1

    while not stop.is_set():
        future = asyncio.ensure_future(pool.execute(b"SET", random.choice(keys), b"v"))
        seen.pending.add(future)
        future.add_done_callback(done)
        await asyncio.sleep(every * random.uniform(0.5, 1.5))


async def _lag(stop: asyncio.Event, lags: list[tuple[float, float]]) -> None:
    """(time, lateness) of 10 ms sleeps (the event loop's lag), until ``stop``."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        await asyncio.sleep(0.01)
        lags.append((asked, loop.time() - asked - 0.01))


async def _open(index: int, nodes: list[tuple[str, int]], options: RefreshOptions) -> ClusterPool:
    _POOL.set(index)  # this task's context: every task the pool spawns inherits it
    return await create_cluster_pool(nodes, refresh=options)


async def _run_pool(index: int, pool: ClusterPool, keys: list[bytes], every: float,
                    stop: asyncio.Event, seen: _Traffic) -> None:
    _POOL.set(index)
    await _traffic(pool, keys, every, stop, seen)


@dataclass
class Figures:
    """What one failover measured."""

    pools: int
    calls: dict[str, int]
    reloads: list[int]
    reloads_before_promotion: list[int]
    bytes_read: int
    reply_sizes: dict[str, int]
    converge_after_kill: list[float]
    converge_after_promotion: list[float]
    promoted_after_kill: float
    dead_attempts: list[int]
    dead_per_second: list[int]
    dead_after_converged: int
    traffic_ok: int
    traffic_errors: Counter[str]
    lag: list[float]
    window: float
    cpu: float
    load: tuple[tuple[float, float, float], tuple[float, float, float]]


async def _measure(cluster: LocalCluster, args: argparse.Namespace) -> Figures:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, _CountingLoop)
    dead = cluster.node_for_slot(0)
    replica = cluster.replicas_of(dead)[0]
    survivors = [n for n in cluster.nodes if n is not dead]
    options = RefreshOptions(period=args.period, query_nodes=args.query_nodes,
                             min_interval=args.min_interval)
    nodes = cluster.startup_nodes
    pools = await asyncio.gather(*(_open(i, nodes, options) for i in range(args.pools)))
    keys, stop = [*_keys(512), _slot0_key()], asyncio.Event()
    seen = [_Traffic() for _ in pools]
    runners = [
        asyncio.ensure_future(_run_pool(i, p, keys, args.every, stop, seen[i]))
        for i, p in enumerate(pools)
    ]
    lags: list[tuple[float, float]] = []
    runners.append(asyncio.ensure_future(_lag(stop, lags)))
    try:
        await asyncio.sleep(WARMUP)
        before = {n.port: _calls(n) for n in survivors}
        reloads_before = [p.stats().refreshes for p in pools]
        load_before = os.getloadavg()
        watcher = _Watcher(replica)
        watcher.start()
        cpu_before = time.process_time()
        killed_at = time.monotonic()
        killed_loop = loop.time()
        dead.kill()
        converged: dict[int, float] = {}
        at_promotion: list[int] | None = None
        deadline = killed_at + CONVERGE_BUDGET
        while len(converged) < len(pools) and time.monotonic() < deadline:
            now = time.monotonic()
            if at_promotion is None and watcher.promoted_at is not None:
                at_promotion = [p.stats().refreshes for p in pools]
            for i, pool in enumerate(pools):
                if i not in converged and pool.slot_owner(0) == replica.address:
                    converged[i] = now
            await asyncio.sleep(0.005)
        if len(converged) < len(pools):
            raise RuntimeError(f"only {len(converged)} of {len(pools)} pools converged")
        last = max(converged.values())
        await asyncio.sleep(max(SETTLE, killed_at + OBSERVE - time.monotonic()))
        window = time.monotonic() - killed_at
        cpu = time.process_time() - cpu_before
        after = {n.port: _calls(n) for n in survivors}
        reloads = [p.stats().refreshes - b for p, b in zip(pools, reloads_before, strict=True)]
        early = [a - b for a, b in zip(at_promotion or reloads_before, reloads_before,
                                       strict=True)]
        load_after = os.getloadavg()
    finally:
        stop.set()
        await asyncio.gather(*runners, return_exceptions=True)
        pending = set().union(*(s.pending for s in seen))
        if pending:
            await asyncio.wait(pending, timeout=20)
        for pool in pools:
            pool.close()
        await asyncio.gather(*(p.wait_closed() for p in pools), return_exceptions=True)
        for future in pending:
            future.cancel()
    watcher.stop.set()
    watcher.join(5)
    if watcher.promoted_at is None:
        raise RuntimeError("the replica was not seen promoted")
    calls = {name: sum(after[p][name] - before[p][name] for p in after) for name in COUNTED}
    bytes_read = 0
    sizes: dict[str, list[int]] = {name: [] for name in COUNTED}
    for node in survivors:
        for name in COUNTED:
            size = _reply_bytes(node, *name.upper().split("|"))
            sizes[name].append(size)
            bytes_read += (after[node.port][name] - before[node.port][name]) * size
    dead_address = dead.address
    attempts = [
        (t - killed_loop, who) for t, host, port, who in loop.attempts
        if t >= killed_loop and (host, port) == dead_address
    ]
    per_pool = Counter(who for _, who in attempts)
    seconds = int(window) + 1
    per_second = [sum(1 for t, _ in attempts if s <= t < s + 1) for s in range(seconds)]
    return Figures(
        pools=len(pools),
        calls=calls,
        reloads=reloads,
        reloads_before_promotion=early,
        bytes_read=bytes_read,
        reply_sizes={name: round(statistics.mean(v)) for name, v in sizes.items()},
        converge_after_kill=sorted(t - killed_at for t in converged.values()),
        converge_after_promotion=sorted(t - watcher.promoted_at for t in converged.values()),
        promoted_after_kill=watcher.promoted_at - killed_at,
        dead_attempts=[per_pool.get(i, 0) for i in range(len(pools))],
        dead_per_second=per_second,
        dead_after_converged=sum(1 for t, _ in attempts if t > last - killed_at),
        traffic_ok=sum(s.ok for s in seen),
        traffic_errors=sum((s.errors for s in seen), Counter()),
        lag=sorted(lag for t, lag in lags if killed_loop <= t <= killed_loop + window),
        window=window,
        cpu=cpu,
        load=(load_before, load_after),
    )


def _report(f: Figures, masters: int, options: str) -> bool:
    n = f.pools
    topology = sum(f.calls[name] for name in TOPOLOGY)
    per_pool = topology / n

    def ms(values: list[float]) -> str:
        return (f"median {statistics.median(values) * 1000:.0f} ms, "
                f"last {max(values) * 1000:.0f} ms")

    print(f"follow cost: {n} pools, {masters} masters + {masters} replicas, one master "
          f"SIGKILLed; window {f.window:.1f} s after the kill; {options}")
    print(f"  load average before/after: {' '.join(f'{x:.2f}' for x in f.load[0])} / "
          f"{' '.join(f'{x:.2f}' for x in f.load[1])}")
    print(f"  replica role:master {f.promoted_after_kill * 1000:.0f} ms after the kill")
    print(f"  topology queries per pool: {per_pool:.2f} "
          + "(" + ", ".join(f"{name} {f.calls[name] / n:.2f}" for name in TOPOLOGY) + ")"
          + f"; cluster|info {f.calls['cluster|info'] / n:.2f}")
    early = f.reloads_before_promotion
    print(f"  reloads per pool: median {statistics.median(f.reloads):.0f}, "
          f"max {max(f.reloads)}, total {sum(f.reloads)}; of them before the promotion "
          f"(no new owner to find yet): median {statistics.median(early):.0f}, "
          f"total {sum(early)}")
    print(f"  slot map bytes read: {f.bytes_read / 1024:.0f} KiB in total "
          f"({f.bytes_read / n / 1024:.1f} KiB per pool); one reply: "
          + ", ".join(f"{name} {size} B" for name, size in f.reply_sizes.items()))
    print(f"  converged (slot 0 -> promoted replica), all {n} pools: after the kill "
          f"{ms(f.converge_after_kill)}; after the promotion {ms(f.converge_after_promotion)}")
    print(f"  connection attempts to the dead node per pool: median "
          f"{statistics.median(f.dead_attempts):.0f}, max {max(f.dead_attempts)}, "
          f"total {sum(f.dead_attempts)}; after the last pool converged: "
          f"{f.dead_after_converged}")
    print(f"  ... per second after the kill (all pools): {f.dead_per_second}")
    print(f"  event loop lag (10 ms sleeps): median {statistics.median(f.lag) * 1000:.1f} ms, "
          f"p99 {f.lag[int(len(f.lag) * 0.99)] * 1000:.0f} ms, max {f.lag[-1] * 1000:.0f} ms")
    print(f"  this process's CPU time: {f.cpu:.1f} s in the {f.window:.1f} s window "
          f"({f.cpu / f.window:.0%} of one core)")
    errors = ", ".join(f"{k} {v}" for k, v in sorted(f.traffic_errors.items())) or "none"
    print(f"  traffic: {f.traffic_ok} SETs ok; errors: {errors}")
    met = per_pool <= GOAL_QUERIES
    print(f"goal <= {GOAL_QUERIES:.0f} topology queries per pool per failover: "
          f"{'met' if met else 'MISSED'} ({per_pool:.2f})")
    return met


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one failover; exit status 1 if the topology query goal is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.follow_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masters", type=int, default=15)
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--every", type=float, default=0.05,
                        help="seconds between one pool's SETs (default 0.05)")
    parser.add_argument("--period", type=float, default=None,
                        help="periodic reload period (default: off)")
    parser.add_argument("--query-nodes", type=int, default=RefreshOptions.query_nodes,
                        help="RefreshOptions.query_nodes (default: the library's)")
    parser.add_argument("--min-interval", type=float, default=RefreshOptions.min_interval,
                        help="RefreshOptions.min_interval (default: the library's)")
    args = parser.parse_args(argv)
    _raise_file_limit()
    began = time.monotonic()
    with LocalCluster(masters=args.masters, replicas_per_master=1) as cluster:
        print(f"cluster of {2 * args.masters} nodes up in {time.monotonic() - began:.1f} s",
              file=sys.stderr)
        loop = _CountingLoop()
        try:
            figures = loop.run_until_complete(_measure(cluster, args))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    options = (f"query_nodes={args.query_nodes} min_interval={args.min_interval} "
               f"period={args.period}")
    return 0 if _report(figures, args.masters, options) else 1


if __name__ == "__main__":
    sys.exit(main())
