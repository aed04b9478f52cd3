"""Soak: the cluster pool at full speed for CLUSTERMGR_SOAK_SECONDS (>= 120 for the figures).

Skipped unless ``CLUSTERMGR_SOAK_SECONDS`` is set. 64 tasks run SET/GET/INCR
back to back over a fixed set of 10,000 keys (so server memory is steady too);
every 5 s the process RSS, open fds, asyncio tasks, the pool's connections and
the throughput are sampled and printed. After a warm-up quarter of the run,
RSS may not grow by more than 16 MB and connections / fds / tasks not at all.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable

import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.testing import LocalCluster

SOAK = float(os.environ.get("CLUSTERMGR_SOAK_SECONDS", "0"))

pytestmark = [
    pytest.mark.soak,
    pytest.mark.skipif(not SOAK, reason="set CLUSTERMGR_SOAK_SECONDS to run the soak"),
    pytest.mark.timeout(int(SOAK) + 300),
]


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def test_soak_cluster(
    local_cluster_factory: Callable[..., LocalCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=1)
    pool = await create_cluster_pool(cluster.startup_nodes, minsize=2, maxsize=8)
    ops = 0
    errors = 0
    stop = asyncio.Event()

    async def worker(seed: int) -> None:
        nonlocal ops, errors
        rng = random.Random(seed)
        while not stop.is_set():
            key = f"soak:{rng.randrange(10_000)}"
            choice = rng.random()
            try:
                if choice < 0.45:
                    await asyncio.wait_for(pool.execute("SET", key, "x" * 100), 20)
                elif choice < 0.9:
                    await asyncio.wait_for(pool.execute("GET", key), 20)
                else:
                    await asyncio.wait_for(pool.execute("INCR", key + ":n"), 20)
            except Exception:
                errors += 1
            ops += 1

    samples: list[tuple[float, float, int, int, int, float]] = []
    try:
        tasks = [asyncio.ensure_future(worker(n)) for n in range(64)]
        started = last = time.monotonic()
        last_ops = 0
        while time.monotonic() - started < SOAK:
            await asyncio.sleep(5)
            now = time.monotonic()
            conns = sum(p.size for p in pool.node_pools.values())
            rate = (ops - last_ops) / (now - last)
            last, last_ops = now, ops
            samples.append((now - started, _rss_mb(), conns, len(os.listdir("/proc/self/fd")),
                            len(asyncio.all_tasks()), rate))
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        pool.close()
        await pool.wait_closed()
    warm = samples[len(samples) // 4 :]
    with capsys.disabled():
        print(f"\nSOAK cluster {SOAK:.0f}s: ops={ops} errors={errors}")
        for t, rss, conns, fds, ntasks, rate in samples:
            print(f"  t={t:6.1f}s rss={rss:7.1f}MB conns={conns} fds={fds} tasks={ntasks} "
                  f"ops/s={rate:8.0f}")
        rss_values = [s[1] for s in warm]
        growth = rss_values[-1] - rss_values[0]
        print(f"SOAK summary: ops/s avg={ops / SOAK:.0f} rss {min(rss_values):.1f}-"
              f"{max(rss_values):.1f}MB (growth after warm-up {growth:+.1f}MB) "
              f"conns {sorted({s[2] for s in warm})} fds {sorted({s[3] for s in warm})} "
              f"errors={errors}")
    assert errors == 0
    assert warm[-1][1] - warm[0][1] < 16, "RSS kept growing"
    assert len({s[2] for s in warm}) == 1, "connection count changed under steady load"
    assert len({s[3] for s in warm}) == 1, "fd count changed under steady load"
    assert len({s[4] for s in warm}) == 1, "task count changed under steady load"
