"""SentinelPool events and stats, driven by killing and failing over a real master."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clustermgr.events import Event, FailoverDetected, NodeDown, NodeUp
from clustermgr.replication import WaitReplicas
from clustermgr.sentinel import create_sentinel_pool


async def _first(events: list[Event], kind: type[Event], address: Any, timeout: float) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for event in events:
            if isinstance(event, kind) and getattr(event, "address", address) == address:
                return event
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind.__name__} in {[str(e) for e in events]}")


async def test_kill_master_emits_down_failover_up(local_sentinel_factory: Any) -> None:
    group = local_sentinel_factory()
    pool = await create_sentinel_pool(group.sentinel_addresses, group.service)
    seen: list[Event] = []
    pool.events.subscribe(seen.append)
    try:
        old = group.master
        await WaitReplicas(pool, replicas=1, timeout=5).execute("SET", "obs:k", "v")
        await asyncio.to_thread(group.kill, old)
        down = await _first(seen, NodeDown, old.address, 20)
        assert "+sdown" in down.reason
        failover = await _first(seen, FailoverDetected, None, 40)
        new = await asyncio.to_thread(group.wait_for_master, not_port=old.port)
        assert (failover.old_master, failover.new_master) == (old.address, new.address)
        assert failover.service == group.service and "sentinel" in failover.detected_by
        assert down.at - 5 <= failover.at <= time.time()
        assert await pool.execute("GET", "obs:k") == b"v"  # replicated before the kill
        await asyncio.to_thread(group.restart, old)
        await _first(seen, NodeUp, old.address, 30)
        stats = pool.stats()
        assert stats.kind == "sentinel" and stats.failovers == 1
        assert stats.nodes[0].address == f"127.0.0.1:{new.port}"
    finally:
        pool.close()
        await pool.wait_closed()
