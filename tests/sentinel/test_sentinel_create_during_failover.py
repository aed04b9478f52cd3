"""Creating sentinel pools while the sentinels fail the master over (real group)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from clustermgr import create_sentinel_pool
from clustermgr.testing import LocalSentinelGroup

pytestmark = [pytest.mark.fault, pytest.mark.timeout(90)]

FAILOVER_TIMEOUT = 10.0


@dataclass
class Creation:
    """One pool creation and its first write."""

    key: str
    after_switch: bool  # started once the sentinels agreed on the new master
    took: float = 0.0
    wrote_to: object = None
    failure: str = ""


async def _create_and_write(group: LocalSentinelGroup, creation: Creation) -> Creation:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        pool = await create_sentinel_pool(
            group.sentinel_addresses, group.service, failover_timeout=FAILOVER_TIMEOUT)
    except Exception as exc:
        creation.failure = f"create failed after {loop.time() - started:.2f}s: {exc!r}"
        return creation
    try:
        await pool.execute("SET", creation.key, "1")
        creation.took = loop.time() - started
        creation.wrote_to = pool.address
    except Exception as exc:
        creation.failure = f"first SET failed: {exc!r}"
    finally:
        pool.close()
        await pool.wait_closed()
    return creation


async def test_pools_created_during_and_after_a_failover_wait_for_the_new_master(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    """SENTINEL FAILOVER; a pool is created every 50 ms during the promotion and
    for 3 s after it (while the sentinels' links to the new master are still
    ``disconnected``). Every creation succeeds within failover_timeout; those
    begun once the sentinels agree write to the new master."""
    group = await asyncio.to_thread(local_sentinel_factory)
    loop = asyncio.get_running_loop()
    failing_over = asyncio.ensure_future(asyncio.to_thread(group.failover))
    creations: list[asyncio.Future[Creation]] = []
    stop_at: float | None = None
    for n in itertools.count():
        if failing_over.done() and stop_at is None:
            stop_at = loop.time() + 3.0
        if (stop_at is not None and loop.time() >= stop_at) or n > 1000:
            break
        creation = Creation(f"create-{n}", after_switch=stop_at is not None)
        creations.append(asyncio.ensure_future(_create_and_write(group, creation)))
        await asyncio.sleep(0.05)
    new = await failing_over
    results = await asyncio.gather(*creations)
    failures = [f"{c.key}: {c.failure}" for c in results if c.failure]
    assert not failures, f"{len(failures)} of {len(results)} creations failed: {failures[:5]}"
    assert max(c.took for c in results) <= FAILOVER_TIMEOUT
    after = [c for c in results if c.after_switch]
    assert after
    elsewhere = [c.key for c in after if c.wrote_to != new.address]
    assert not elsewhere, f"written elsewhere than the new master {new.port}: {elsewhere[:5]}"
    # Writes made on the old master during the failover (after the promotion) are lost.
    missing = [f"{c.key} on {c.wrote_to}" for c in results if new.command("GET", c.key) is None]
    assert not missing, f"writes not on the new master {new.port}: {missing[:5]}"
