"""``python -m benchmarks.failover`` (``./dev bench-failover``): how fast clients follow a failover.

A benchmark, not a test: it prints figures. For each ``cluster-require-full-coverage``
setting (``no``, ``yes``) it starts a local cluster of 3 masters + 3 replicas,
starts every client (clustermgr, and redis-py's ``RedisCluster`` when
installed) in a process of its own, and runs, for all of them at once,
against the same failover:

* one *sweeper*: a fresh SET every 10 ms (not waiting for the previous one),
  its keys stepping over every slot;
* one *shard writer* per shard: a SET every 5 ms after the previous reply.

Then it SIGKILLs the master owning slot 0 and records when its replica reports
``role:master`` (and when each surviving master reports ``cluster_state:ok``
again after ``fail``) by polling them from a thread. Per client it prints:

* ``back``: the killed shard's first successful write after the promotion (ms);
* ``errors``: failed commands, split by ``may_have_executed`` where the client
  says it (clustermgr), else by type;
* ``gap``: the other shards' longest time without a successful write, from the
  kill to the end (coverage ``no``), beside the servers' own longest gap seen
  by a plain socket writing to each other master every 5 ms; with coverage
  ``yes`` the servers refuse every write from the FAIL flag to the
  promotion, so also ``after ok``: the other shards' first successful write
  after their master reports ``cluster_state:ok`` (ms, the worst shard).

Goals (issue 14): back <= 100 ms, no error for a command that cannot have run,
gap < 50 ms (coverage ``no``), after ok <= 50 ms (coverage ``yes``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from clustermgr.cluster import create_cluster_pool
from clustermgr.events import TopologyChanged
from clustermgr.slots import SLOT_COUNT, key_slot
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.process import LocalServer
from clustermgr.testing.resp import RespError

__all__ = ["main"]

SWEEP_EVERY = 0.010
SHARD_EVERY = 0.005
BEFORE_KILL = 1.0  # seconds of traffic before the kill
AFTER_BACK = 1.5  # seconds of traffic after every shard is back


def _key_per_slot() -> list[bytes]:
    """One key for each slot (``k:{<tag>}``), found once."""
    keys: list[bytes | None] = [None] * SLOT_COUNT
    missing = SLOT_COUNT
    n = 0
    while missing:
        key = f"k:{{{n}}}".encode()
        slot = key_slot(key)
        if keys[slot] is None:
            keys[slot] = key
            missing -= 1
        n += 1
    return [k for k in keys if k is not None]


KEYS = _key_per_slot()
_STRIDE = 7919  # prime: n * stride mod 16384 visits every slot


Setter = Callable[[bytes, bytes], Awaitable[Any]]


@dataclass
class Client:
    """One client under test: how to SET and what it saw."""

    name: str
    set: Setter
    close: Callable[[], Awaitable[None]]
    #: (slot, completion time) of every successful SET.
    done: list[tuple[int, float]] = field(default_factory=list)
    #: (slot, time, error type, may_have_executed or None) of every failed SET.
    errors: list[tuple[int, float, str, bool | None]] = field(default_factory=list)
    #: shard index -> completion times of that shard writer's successful SETs.
    shard_done: dict[int, list[float]] = field(default_factory=dict)
    #: When the client applied a slot map moving slots (clustermgr's events), if known.
    map_at: float | None = None

    def failed(self, slot: int, at: float, error: BaseException) -> None:
        """Record a failed SET."""
        self.errors.append(
            (slot, at, type(error).__name__, getattr(error, "may_have_executed", None))
        )

    def results(self) -> dict[str, Any]:
        """What the client saw, as JSON (times are CLOCK_MONOTONIC, shared by processes)."""
        return {"name": self.name, "done": self.done, "errors": self.errors,
                "shard_done": self.shard_done, "map_at": self.map_at}


async def _clustermgr(nodes: list[tuple[str, int]]) -> Client:
    pool = await create_cluster_pool(nodes)
    loop = asyncio.get_running_loop()

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    client = Client("clustermgr", lambda k, v: pool.execute(b"SET", k, v), close)

    def seen(event: TopologyChanged) -> None:
        if event.moved and client.map_at is None:
            client.map_at = loop.time()

    pool.events.subscribe(seen, TopologyChanged)
    return client


async def _redis_py(nodes: list[tuple[str, int]]) -> Client | None:
    try:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
    except ImportError:
        return None
    client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes])
    await client.initialize()

    async def close() -> None:
        await client.aclose()

    return Client("redis-py", client.set, close)


class RawWriter(threading.Thread):
    """The servers' own gap: a plain socket SETting on one master every 5 ms."""

    def __init__(self, master: LocalServer, key: bytes) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.key = key
        self.done: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.master.connect() as conn:
            while not self.stop.is_set():
                try:
                    conn.command("SET", self.key, "raw")
                except RespError:  # CLUSTERDOWN while the cluster state is fail
                    pass
                else:
                    self.done.append(time.monotonic())
                time.sleep(SHARD_EVERY)


class Watcher(threading.Thread):
    """Polls the replica's ROLE and the other masters' cluster_state from a thread."""

    def __init__(self, replica: LocalServer, masters: list[LocalServer]) -> None:
        super().__init__(daemon=True)
        self.replica = replica
        self.masters = masters
        self.promoted_at: float | None = None
        self.failed_at: dict[int, float] = {}
        self.ok_at: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        conns = {m.port: m.connect() for m in self.masters}
        role = self.replica.connect()
        try:
            while not self.stop.is_set():
                if self.promoted_at is None:
                    reply = role.command("ROLE")
                    if isinstance(reply, list) and reply and reply[0] in ("master", b"master"):
                        self.promoted_at = time.monotonic()
                for port, conn in conns.items():
                    if port in self.ok_at:
                        continue
                    info = conn.command("CLUSTER", "INFO")
                    text = info.decode() if isinstance(info, bytes) else str(info)
                    now = time.monotonic()
                    if "cluster_state:fail" in text:
                        self.failed_at.setdefault(port, now)
                    elif port in self.failed_at:
                        self.ok_at[port] = now
                time.sleep(0.002)
        finally:
            role.close()
            for conn in conns.values():
                conn.close()


@dataclass
class Run:
    """What one failover measured for one client."""

    client: str
    coverage: str
    back_ms: float | None
    errors_not_run: int
    errors_maybe_run: int
    error_kinds: dict[str, int]
    gap_ms: float | None
    gap_at_ms: float | None  # when the longest gap began, after the kill
    map_ms: float | None  # the client applied the new slot map, after the promotion
    after_ok_ms: float | None


async def _sweeper(client: Client, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Future[Any]] = set()
    n = 0
    while not stop.is_set():
        slot = (n * _STRIDE) % SLOT_COUNT
        n += 1
        issued = loop.time()

        async def one(slot: int = slot, issued: float = issued, n: int = n) -> None:
            try:
                await client.set(KEYS[slot], b"v%d" % n)
            except Exception as exc:
                client.failed(slot, issued, exc)
            else:
                client.done.append((slot, loop.time()))

        task = asyncio.ensure_future(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(SWEEP_EVERY)
    if pending:
        await asyncio.wait(pending, timeout=20)
        for task in pending:
            task.cancel()


async def _shard_writer(client: Client, index: int, slot: int, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    times = client.shard_done.setdefault(index, [])
    n = 0
    while not stop.is_set():
        n += 1
        try:
            await client.set(KEYS[slot], b"s%d" % n)
        except Exception as exc:
            client.failed(slot, loop.time(), exc)
        else:
            times.append(loop.time())
        await asyncio.sleep(SHARD_EVERY)


def _longest_gap(times: list[float], since: float, until: float) -> tuple[float, float]:
    """The longest time without a success in (since, until) and when it began."""
    points = [since, *(t for t in times if since < t < until), until]
    return max((b - a, a) for a, b in itertools.pairwise(points))


async def _child(name: str, nodes: list[tuple[str, int]], shard_slots: list[int]) -> int:
    """One client in a process of its own: write until a line on stdin, print JSON."""
    client = await (_clustermgr(nodes) if name == "clustermgr" else _redis_py(nodes))
    if client is None:
        print(json.dumps(None), flush=True)
        return 0
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(_sweeper(client, stop))]
    tasks += [asyncio.ensure_future(_shard_writer(client, i, slot, stop))
              for i, slot in enumerate(shard_slots)]
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    stop.set()
    await asyncio.gather(*tasks)
    await client.close()
    print(json.dumps(client.results()), flush=True)
    return 0


def _spawn(name: str, nodes: list[tuple[str, int]], shard_slots: list[int]) -> Any:
    args = [sys.executable, "-m", "benchmarks.failover", "--child", name,
            "--nodes", ",".join(f"{h}:{p}" for h, p in nodes),
            "--shard-slots", ",".join(map(str, shard_slots))]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


async def _one_failover(coverage: str, clients: list[str]) -> list[Run]:
    cluster = LocalCluster(config=[f"cluster-require-full-coverage {coverage}"])
    await asyncio.to_thread(cluster.start)
    children: list[Any] = []
    try:
        victim = cluster.node_for_slot(0)
        (replica,) = cluster.replicas_of(victim)
        survivors = [m for m in cluster.masters if m.port != victim.port]
        # One slot per shard for the shard writers; shard 0 is the victim's.
        ranges = cluster.slots()
        shard_slots = [0] + [
            next(r.start for r in ranges if r.master_port == m.port) for m in survivors
        ]
        killed = {s for r in ranges if r.master_port == victim.port
                  for s in range(r.start, r.end + 1)}
        children = [_spawn(name, cluster.startup_nodes, shard_slots) for name in clients]
        for child in children:
            line = await asyncio.to_thread(child.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError(f"client process did not start: {line!r}")
        await asyncio.sleep(BEFORE_KILL)
        raws = [RawWriter(m, KEYS[slot])
                for m, slot in zip(survivors, shard_slots[1:], strict=True)]
        for raw in raws:
            raw.start()
        watcher = Watcher(replica, survivors)
        watcher.start()
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        cluster.kill(victim)
        deadline = killed_at + 30
        while loop.time() < deadline and (  # noqa: ASYNC110 - a thread sets these
            watcher.promoted_at is None or len(watcher.ok_at) < len(watcher.failed_at)
        ):
            await asyncio.sleep(0.05)
        promoted_at = watcher.promoted_at
        await asyncio.sleep(AFTER_BACK)
        watcher.stop.set()
        for raw in raws:
            raw.stop.set()
        end = loop.time()
        seen = []
        for child in children:
            out, _ = await asyncio.to_thread(child.communicate, "stop\n", 30)
            result = json.loads(out.strip().splitlines()[-1])
            if result is not None:
                seen.append(result)
        watcher.join(5)
        for raw in raws:
            raw.join(5)
        server_gap = max(_longest_gap(r.done, killed_at, end)[0] for r in raws) * 1000
        print(f"coverage {coverage}: the servers' own longest gap (a plain socket per other "
              f"master): {server_gap:.0f} ms", flush=True)
        runs = []
        for c in seen:
            back = None
            if promoted_at is not None:
                after = [t for slot, t in c["done"] if slot in killed and t > promoted_at]
                back = (min(after) - promoted_at) * 1000 if after else None
            not_run = sum(1 for *_x, maybe in c["errors"] if maybe is False)
            maybe_run = len(c["errors"]) - not_run
            kinds: dict[str, int] = {}
            for _slot, _at, kind, _m in c["errors"]:
                kinds[kind] = kinds.get(kind, 0) + 1
            shard_done = {int(k): v for k, v in c["shard_done"].items()}
            gaps = [_longest_gap(shard_done.get(i, []), killed_at, end)
                    for i in range(1, len(shard_slots))]
            after_ok: list[float] = []
            for i, master in enumerate(survivors, start=1):
                ok = watcher.ok_at.get(master.port)
                if ok is not None:
                    later = [t for t in shard_done.get(i, []) if t >= ok]
                    after_ok.append((min(later) - ok) * 1000 if later else float("inf"))
            worst = max(gaps) if gaps else None
            map_at = c["map_at"]
            runs.append(Run(
                c["name"], coverage, back,
                not_run if c["name"] == "clustermgr" else -1, maybe_run, kinds,
                worst[0] * 1000 if worst else None,
                (worst[1] - killed_at) * 1000 if worst else None,
                (map_at - promoted_at) * 1000 if map_at and promoted_at else None,
                max(after_ok) if after_ok else None,
            ))
        return runs
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()  # our own child process, by its handle
                child.wait(10)
        await asyncio.to_thread(cluster.stop)


def _fmt(value: float | None) -> str:
    return "-" if value is None else ("inf" if value == float("inf") else f"{value:.0f}")


def _report(runs: list[Run]) -> str:
    lines = [
        f"{'coverage':<9}{'client':<12}{'back ms':>9}{'map ms':>8}{'gap ms':>9}{'(at)':>7}"
        f"{'after ok ms':>13}"
        f"{'err not-run':>13}{'err maybe':>11}  kinds",
    ]
    for r in runs:
        lines.append(
            f"{r.coverage:<9}{r.client:<12}{_fmt(r.back_ms):>9}{_fmt(r.map_ms):>8}{_fmt(r.gap_ms):>9}"
            f"{_fmt(r.gap_at_ms):>7}"
            f"{_fmt(r.after_ok_ms):>13}{'?' if r.errors_not_run < 0 else r.errors_not_run:>13}"
            f"{r.errors_maybe_run:>11}  {r.error_kinds or ''}"
        )
    return "\n".join(lines)


def _summary(runs: list[Run]) -> str:
    lines = ["medians:"]
    keys = sorted({(r.coverage, r.client) for r in runs})
    for coverage, client in keys:
        mine = [r for r in runs if (r.coverage, r.client) == (coverage, client)]

        def med(values: list[float | None]) -> str:
            real = [v for v in values if v is not None]
            return _fmt(statistics.median(real)) if real else "-"

        lines.append(
            f"  coverage {coverage:<3} {client:<11} back {med([r.back_ms for r in mine])} ms, "
            f"gap {med([r.gap_ms for r in mine])} ms, after ok "
            f"{med([r.after_ok_ms for r in mine])} ms, errors "
            f"{sum(r.errors_not_run for r in mine) if client == 'clustermgr' else '?'} not run / "
            f"{sum(r.errors_maybe_run for r in mine)} maybe run"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the failovers and print one line per client and failover, then medians."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="failovers per coverage setting")
    parser.add_argument("--coverage", default="no,yes",
                        help="cluster-require-full-coverage values (default: no,yes)")
    parser.add_argument("--clients", default="clustermgr,redis-py")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--nodes", help=argparse.SUPPRESS)
    parser.add_argument("--shard-slots", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        nodes = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in args.nodes.split(","))]
        slots = [int(x) for x in args.shard_slots.split(",")]
        return asyncio.run(_child(args.child, nodes, slots))
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    runs: list[Run] = []
    for _ in range(args.runs):
        for coverage in [c.strip() for c in args.coverage.split(",") if c.strip()]:
            got = asyncio.run(_one_failover(coverage, clients))
            print(_report(got), flush=True)
            runs.extend(got)
    print(_summary(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
