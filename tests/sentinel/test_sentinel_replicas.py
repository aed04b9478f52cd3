"""role="replica": reads spread over every healthy replica, and follow the replica set."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import pytest
from sentinel_helpers import wait_for

from clustermgr import create_sentinel_pool
from clustermgr.errors import ReadOnlyError, RedisError
from clustermgr.testing import LocalSentinelGroup
from clustermgr.testing.process import LocalServer

pytestmark = pytest.mark.timeout(90)

logger = logging.getLogger("tests.sentinel")

Factory = Callable[..., LocalSentinelGroup]


def _gets(server: LocalServer) -> int:
    stat = server.info("commandstats").get("cmdstat_get", "calls=0")
    return int(stat.split(",")[0].split("=")[1])


async def test_reads_spread_over_replicas_and_survive_a_kill(
    local_sentinel_factory: Factory,
) -> None:
    group = local_sentinel_factory(replicas=2)
    replicas = group.replicas
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, role="replica", maxsize=2,
        failover_timeout=10.0,
    )
    try:
        assert sorted(pool.replica_addresses) == sorted(r.address for r in replicas)
        before = [await asyncio.to_thread(_gets, r) for r in replicas]
        await asyncio.gather(*(pool.execute("GET", f"spread:{i}") for i in range(400)))
        sent = [await asyncio.to_thread(_gets, r) - b for r, b in zip(replicas, before,
                                                                           strict=True)]
        assert sum(sent) == 400 and min(sent) >= 150, f"GETs per replica: {sent}"

        # A write to a replica is refused, not retried, and drops nothing.
        with pytest.raises(ReadOnlyError):
            await pool.execute("SET", "spread:w", "1")
        assert len(pool.replica_addresses) == 2

        # Readers keep going while one replica is SIGKILLed.
        errors: Counter[str] = Counter()
        served = 0
        stop = asyncio.Event()

        async def reader(n: int) -> None:
            nonlocal served
            while not stop.is_set():
                try:
                    await pool.execute("GET", f"spread:{n}")
                    served += 1
                except RedisError as exc:
                    errors[f"{type(exc).__name__}: {exc}"] += 1
                await asyncio.sleep(0.001)

        readers = [asyncio.ensure_future(reader(n)) for n in range(20)]
        try:
            await asyncio.sleep(0.3)
            victim, survivor = replicas
            await asyncio.to_thread(group.kill, victim)
            killed_at = asyncio.get_running_loop().time()
            await wait_for(lambda: pool.replica_addresses == [survivor.address], 10,
                           "the killed replica to be dropped")
            dropped_after = asyncio.get_running_loop().time() - killed_at
            served_at_drop = served
            survivor_before = await asyncio.to_thread(_gets, survivor)
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*readers)
        assert served > served_at_drop, "reads stopped after the replica was dropped"
        assert await asyncio.to_thread(_gets, survivor) > survivor_before
        assert not errors, f"readers saw errors: {dict(errors)}"
        logger.warning("replica killed: dropped after %.0f ms; %d reads, no errors",
                       dropped_after * 1000, served)

        # Back up and in sync: the sentinels list it again and the pool takes it back.
        await asyncio.to_thread(group.restart, victim)
        await wait_for(lambda: len(pool.replica_addresses) == 2, 20,
                       "the restarted replica to rejoin the rotation")
        back = await asyncio.to_thread(_gets, victim)
        await asyncio.gather(*(pool.execute("GET", f"spread:{i}") for i in range(100)))
        assert await asyncio.to_thread(_gets, victim) - back >= 30
    finally:
        pool.close()
        await pool.wait_closed()
