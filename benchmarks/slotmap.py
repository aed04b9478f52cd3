"""``python -m benchmarks.slotmap``: the cost of reading a 1,000-node slot map.

A benchmark, not a test: it prints figures. It builds a synthetic
``CLUSTER SHARDS`` reply of a cluster of ``--nodes`` nodes (half masters, each
with one replica, the 16384 slots split evenly; the reply bytes as Redis 7
sends them) and times, best and median of ``--runs``:

* ``decode``: the RESP bytes to Python objects (``hiredis.Reader``, as a
  connection does);
* ``parse``: :func:`~clustermgr.cluster.topology.parse_shards`;
* ``diff``: :func:`~clustermgr.cluster.topology.diff_maps` of the map against
  the same cluster after one failover (one shard's replica promoted);
* ``merge``: :func:`~clustermgr.cluster.topology.merge_views` of three views
  (what one reload with ``query_nodes=3`` merges);
* ``parse+diff``: the issue's figure (goal: under 50 ms for 1,000 nodes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import hiredis

from clustermgr.cluster.topology import SlotMap, diff_maps, merge_views, parse_shards
from clustermgr.slots import SLOT_COUNT

__all__ = ["main", "shards_reply"]

GOAL_MS = 50.0
_HOST = "10.0.0.1"


def _bulk(value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return b":%d\r\n" % value
    data = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _array(items: Sequence[bytes]) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(items)


def _node(index: int, role: str, offset: int, health: str = "online") -> bytes:
    fields: list[bytes | str | int] = [
        "id", f"{index:040x}", "port", 7000 + index, "ip", _HOST, "endpoint", _HOST,
        "role", role, "replication-offset", offset, "health", health,
    ]
    return _array([_bulk(f) for f in fields])


def shards_reply(nodes: int, *, promoted: int | None = None) -> bytes:
    """RESP bytes of ``CLUSTER SHARDS`` for ``nodes`` nodes (master + replica shards).

    With ``promoted``, that shard's replica is master and its old master a
    failed replica (the view right after a failover).
    """
    shards = max(1, nodes // 2)
    bounds = [round(i * SLOT_COUNT / shards) for i in range(shards + 1)]
    out = []
    for shard in range(shards):
        master, replica = 2 * shard, 2 * shard + 1
        if shard == promoted:
            members = [_node(replica, "master", 100), _node(master, "replica", 90, "fail")]
        else:
            members = [_node(master, "master", 100), _node(replica, "replica", 100)]
        slots = _array([_bulk(bounds[shard]), _bulk(bounds[shard + 1] - 1)])
        out.append(_array([_bulk("slots"), slots, _bulk("nodes"), _array(members)]))
    return _array(out)


def _decode(data: bytes) -> Any:
    reader = hiredis.Reader()
    reader.feed(data)
    return reader.gets()


def _time_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return min(samples), statistics.median(samples)


def measure(nodes: int, runs: int) -> dict[str, tuple[float, float]]:
    """Best and median milliseconds of each step for a ``nodes``-node cluster."""
    before_bytes, after_bytes = shards_reply(nodes), shards_reply(nodes, promoted=0)
    before_reply, after_reply = _decode(before_bytes), _decode(after_bytes)
    source = (_HOST, 7002)
    old = parse_shards(before_reply, epoch=1, source=source)
    new = parse_shards(after_reply, epoch=2, source=source)
    views: list[SlotMap] = [
        parse_shards(after_reply, epoch=2, source=(_HOST, 7000 + i)) for i in (2, 4, 6)
    ]
    if not (old.covered == new.covered == SLOT_COUNT and diff_maps(old, new).moved_slots):
        raise RuntimeError("the synthetic replies do not describe the cluster meant")

    def parse_and_diff() -> None:
        diff_maps(old, parse_shards(after_reply, epoch=2, source=source))

    return {
        "decode": _time_ms(lambda: _decode(after_bytes), runs),
        "parse": _time_ms(lambda: parse_shards(after_reply, epoch=2, source=source), runs),
        "diff": _time_ms(lambda: diff_maps(old, new), runs),
        "merge": _time_ms(lambda: merge_views(old, views), runs),
        "parse+diff": _time_ms(parse_and_diff, runs),
        "reply_kib": (len(after_bytes) / 1024, len(after_bytes) / 1024),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures; exit status 1 if parse+diff misses the goal."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.slotmap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    figures = measure(args.nodes, args.runs)
    kib = figures.pop("reply_kib")[0]
    print(f"synthetic CLUSTER SHARDS: {args.nodes} nodes, {kib:.0f} KiB, {args.runs} runs")
    for name, (best, median) in figures.items():
        print(f"  {name:<11} best {best:7.2f} ms   median {median:7.2f} ms")
    best = figures["parse+diff"][0]
    met = best < GOAL_MS
    print(f"goal parse+diff < {GOAL_MS:.0f} ms: {'met' if met else 'MISSED'} ({best:.1f} ms best)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
