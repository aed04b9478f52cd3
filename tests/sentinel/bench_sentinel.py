"""SentinelPool.execute overhead against a plain ConnectionsPool (not a test).

Run: ``python tests/sentinel/bench_sentinel.py [rounds]``. Starts a
LocalSentinelGroup on 127.0.0.1, then for each pool measures

* ``gather``: 200 SET + 200 GET issued at once and awaited with
  ``asyncio.gather`` (gather wraps anything that is not a Future in a Task);
* ``tasks``: 200 concurrent tasks, each awaiting SET then GET in a loop.

Prints ops/s (best of 3) for each.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from clustermgr import create_pool, create_sentinel_pool
from clustermgr.testing import LocalSentinelGroup

TASKS = 200


async def _gather(pool: Any, rounds: int) -> float:
    started = time.perf_counter()
    for r in range(rounds):
        await asyncio.gather(*(pool.execute("SET", f"b:{i}", r) for i in range(TASKS)))
        await asyncio.gather(*(pool.execute("GET", f"b:{i}") for i in range(TASKS)))
    return 2 * TASKS * rounds / (time.perf_counter() - started)


async def _tasks(pool: Any, rounds: int) -> float:
    async def worker(i: int) -> None:
        key = f"t:{i}"
        for r in range(rounds):
            await pool.execute("SET", key, r)
            await pool.execute("GET", key)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(TASKS)))
    return 2 * TASKS * rounds / (time.perf_counter() - started)


async def _measure(group: LocalSentinelGroup, rounds: int) -> None:
    plain = await create_pool(group.master_address, maxsize=4)
    sentinel = await create_sentinel_pool(group.sentinel_addresses, group.service, maxsize=4)
    try:
        for name, fn in (("gather", _gather), ("tasks", _tasks)):
            for label, pool in (("ConnectionsPool", plain), ("SentinelPool", sentinel)):
                await fn(pool, max(1, rounds // 10))  # warm up
                best = max([await fn(pool, rounds) for _ in range(3)])
                print(f"{name:7s} {label:16s} {best:>10,.0f} ops/s")
    finally:
        for pool in (plain, sentinel):
            pool.close()
            await pool.wait_closed()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with LocalSentinelGroup() as group:
        asyncio.run(_measure(group, rounds))


if __name__ == "__main__":
    main()
