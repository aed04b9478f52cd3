"""Following a failover is cheap (issue 14, section 3): probes, then one map read.

While commands are held for a dead master, the pool polls one surviving node's
``CLUSTER INFO`` and reads the map (``CLUSTER SHARDS`` + ``CLUSTER NODES``)
only when it shows the promotion. Counted server-side (``INFO commandstats``
on the surviving nodes; nothing else sends cluster commands meanwhile).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from clustermgr.cluster import RefreshOptions, create_cluster_pool, key_slot
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.process import LocalServer

ClusterFactory = Callable[..., LocalCluster]

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]

_COUNTED = ("cluster|shards", "cluster|nodes", "cluster|slots", "cluster|info")


def _calls(nodes: list[LocalServer]) -> dict[str, int]:
    """Calls of each counted command, summed over ``nodes``."""
    total = dict.fromkeys(_COUNTED, 0)
    for node in nodes:
        text = node.command("INFO", "commandstats")
        text = text.decode() if isinstance(text, bytes) else str(text)
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            command = name.removeprefix("cmdstat_")
            if command in total:
                fields = dict(f.split("=", 1) for f in rest.split(","))
                total[command] += int(fields["calls"])
    return total


async def test_held_commands_probe_and_read_the_map_once_per_failover(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(
        cluster.startup_nodes, retry_timeout=20, refresh=RefreshOptions(period=None)
    )
    try:
        victim = cluster.masters[0]
        (replica,) = cluster.replicas_of(victim)
        keys = [k for k in (f"cost:{i}" for i in range(200))
                if cluster.node_for_key(k).port == victim.port][:10]
        await pool.execute("SET", keys[0], "before")
        survivors = [n for n in cluster.nodes if n.port != victim.port]
        before = _calls(survivors)
        cluster.kill(victim)
        await asyncio.sleep(0.2)  # the pool sees its connections closed (no write is in doubt)
        held = []
        for key in keys:  # a command every 30 ms, all held
            held.append(asyncio.ensure_future(pool.execute("SET", key, "v")))
            await asyncio.sleep(0.03)
        await asyncio.sleep(1.0)
        assert not any(f.done() for f in held), [f.exception() for f in held if f.done()]
        replica.command("CLUSTER", "FAILOVER", "TAKEOVER")
        assert await asyncio.wait_for(asyncio.gather(*held), 15) == [b"OK"] * len(keys)
        assert pool.slot_owner(key_slot(keys[0])) == replica.address
        after = _calls(survivors)
    finally:
        pool.close()
        await pool.wait_closed()
    spent = {c: after[c] - before[c] for c in _COUNTED}
    # One view after the promotion: SHARDS + NODES once (goal: <= 3 topology queries).
    assert spent["cluster|shards"] + spent["cluster|nodes"] + spent["cluster|slots"] <= 3, spent
    assert spent["cluster|info"] >= 5, spent  # it did poll meanwhile, with probes


async def test_polls_read_the_map_when_cluster_info_is_refused(
    local_cluster_factory: ClusterFactory,
) -> None:
    """A user denied ``CLUSTER INFO`` (and ``ROLE``) once the pool runs: the polls
    fall back to reading the map, and the held commands still follow the promotion."""
    cluster = local_cluster_factory()
    pool = await create_cluster_pool(
        cluster.startup_nodes, retry_timeout=20, refresh=RefreshOptions(period=None)
    )
    try:
        victim = cluster.masters[0]
        (replica,) = cluster.replicas_of(victim)
        keys = [k for k in (f"acl:{i}" for i in range(200))
                if cluster.node_for_key(k).port == victim.port][:5]
        await pool.execute("SET", keys[0], "before")
        survivors = [n for n in cluster.nodes if n.port != victim.port]
        for node in survivors:
            node.command("ACL", "SETUSER", "default", "-cluster|info", "-role")
        cluster.kill(victim)
        await asyncio.sleep(0.2)
        held = []
        for key in keys:
            held.append(asyncio.ensure_future(pool.execute("SET", key, "v")))
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.5)
        assert not any(f.done() for f in held), [f.exception() for f in held if f.done()]
        replica.command("CLUSTER", "FAILOVER", "TAKEOVER")  # allowed: only INFO, ROLE are not
        assert await asyncio.wait_for(asyncio.gather(*held), 15) == [b"OK"] * len(keys)
        assert pool.slot_owner(key_slot(keys[0])) == replica.address
    finally:
        pool.close()
        await pool.wait_closed()

