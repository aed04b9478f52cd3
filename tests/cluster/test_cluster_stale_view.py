"""A stale view never moves a shard back to its demoted master.

After ``CLUSTER FAILOVER`` a node that voted for the replica has bumped its
``cluster_current_epoch`` but may not have learnt the new owner yet: its view
names the old master with a *higher* current epoch than the fresh views. A
fake node replays the real ``CLUSTER INFO``/``SHARDS``/``NODES`` replies one
master gave before the failover (its current epoch raised above every real
node's) and is queried on every reload beside the real nodes; the pool must
route the shard to the new master, by config epoch, on every reload.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import hiredis
import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.cluster.refresh import RefreshOptions
from clustermgr.testing._wait import wait_until
from clustermgr.testing.cluster import LocalCluster
from clustermgr.testing.process import LocalServer
from tests.fake_server import FakeServer

ClusterFactory = Callable[..., LocalCluster]

pytestmark = pytest.mark.fault


def _raw_reply(node: LocalServer, *command: str) -> bytes:
    """The exact RESP bytes ``node`` answers to ``command`` (to replay them)."""
    with socket.create_connection((node.host, node.port), timeout=10) as sock:
        sock.sendall(hiredis.pack_command(command))
        reader, data = hiredis.Reader(), b""
        while True:
            chunk = sock.recv(1 << 16)
            assert chunk, "server closed the connection"
            data += chunk
            reader.feed(chunk)
            if reader.gets() is not False:
                return data


def _current_epoch(node: LocalServer) -> int:
    info = str(node.command("CLUSTER", "INFO"))
    return int(info.split("cluster_current_epoch:")[1].split()[0])


def _owner_port(cluster: LocalCluster, via: LocalServer, slot: int) -> int | None:
    return next((r.master_port for r in cluster.slots(via=via) if r.start <= slot <= r.end), None)


async def test_stale_view_with_higher_current_epoch_never_wins(
    local_cluster_factory: ClusterFactory,
) -> None:
    cluster = local_cluster_factory()
    master = cluster.masters[1]
    (replica,) = cluster.replicas_of(master)
    witness = cluster.masters[0]
    slot = next(r.start for r in cluster.slots(via=witness) if r.master_port == master.port)
    # The witness's view before the failover: the old master owns the shard.
    stale = {cmd: _raw_reply(witness, "CLUSTER", cmd) for cmd in ("SHARDS", "NODES", "SLOTS")}
    await asyncio.to_thread(cluster.failover, replica)
    await asyncio.to_thread(
        wait_until,
        lambda: all(_owner_port(cluster, n, slot) == replica.port for n in cluster.nodes),
        timeout=20, what="every node to name the new master",
    )
    epoch = max(_current_epoch(n) for n in cluster.nodes) + 5
    info = f"cluster_state:ok\r\ncluster_current_epoch:{epoch}\r\n".encode()
    async with FakeServer() as fake:
        fake.replies[(b"CLUSTER", b"INFO")] = b"$%d\r\n%s\r\n" % (len(info), info)
        for cmd, reply in stale.items():
            fake.replies[(b"CLUSTER", cmd.encode())] = reply
        pool = await create_cluster_pool(
            [fake.address, *cluster.startup_nodes],
            refresh=RefreshOptions(period=0.05, min_interval=0.0, query_nodes=16),
        )
        try:
            for _ in range(5):  # the startup reload, then periodic ones
                before = pool.stats().refreshes
                assert pool.slot_owner(slot) == replica.address
                assert master.address not in pool.node_pools
                for _ in range(200):
                    if pool.stats().refreshes > before:
                        break
                    await asyncio.sleep(0.01)
                assert pool.stats().refreshes > before
            assert any(c[:2] == [b"CLUSTER", b"SHARDS"] for c in fake.received)
        finally:
            pool.close()
            await pool.wait_closed()
