"""A TLS cluster whose nodes also keep a plaintext port (``port`` + ``tls-port``,
``tls-cluster yes``): a pool opened with TLS routes to each node's TLS port
from ``CLUSTER SHARDS``, never to the plaintext one; a plaintext pool the other
way round. The servers' own ``CLIENT LIST`` (``laddr``) shows which port each
of the pool's connections reached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import RedisError
from clustermgr.testing import (
    LocalCluster,
    LocalServer,
    TlsFiles,
    client_context,
    make_certificates,
    tls_supported,
    wait_until,
)
from tests.fake_server import FakeServer

SECRET = "Cluster-Tls-Pw-0c3e"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if not tls_supported():
        pytest.skip("redis-server was built without TLS")
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def dual_cluster(tls_files: TlsFiles) -> Iterator[LocalCluster]:
    with LocalCluster(masters=3, replicas_per_master=1, password=SECRET, tls=tls_files,
                      plaintext_port=True) as cluster:
        yield cluster


def _clients(node: LocalServer) -> list[dict[str, str]]:
    """``CLIENT LIST`` of ``node`` as fields, without the connection asking."""
    clients = []
    for line in str(node.command("CLIENT", "LIST")).splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("cmd") != "client|list":
            clients.append(fields)
    return clients


def _local_ports(node: LocalServer) -> list[int]:
    """The local port of every client connection (``laddr``) except this one."""
    return [int(c["laddr"].rpartition(":")[2]) for c in _clients(node) if "laddr" in c]


async def test_tls_pool_routes_to_tls_ports_only(
    dual_cluster: LocalCluster, tls_files: TlsFiles
) -> None:
    tls_ports = {n.port for n in dual_cluster.nodes}
    plain_ports = {n.plaintext_port for n in dual_cluster.nodes}
    before = {n.port: _local_ports(n).count(n.plaintext_port) for n in dual_cluster.nodes}
    pool = await create_cluster_pool(
        dual_cluster.startup_nodes[:1], password=SECRET, ssl=client_context(tls_files),
        read_from="replica",
    )
    try:
        for i in range(30):
            assert await pool.execute("SET", f"tls:{i}", i) == b"OK"
            assert await pool.execute("GET", f"tls:{i}") == str(i).encode()
        slot_map = pool.slot_map
        assert slot_map is not None
        routed = {node.address[1] for node in slot_map.nodes}
        assert routed == tls_ports and not routed & plain_ports
        for node in dual_cluster.nodes:  # the servers' view: nothing new on plaintext ports
            assert _local_ports(node).count(node.plaintext_port) == before[node.port]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_plaintext_pool_routes_to_plaintext_ports(dual_cluster: LocalCluster) -> None:
    plain_ports = {n.plaintext_port for n in dual_cluster.nodes}
    first = dual_cluster.nodes[0]
    assert first.plaintext_port is not None
    pool = await create_cluster_pool([(first.host, first.plaintext_port)], password=SECRET)
    try:
        assert await pool.execute("SET", "plain:k", "v") == b"OK"
        assert pool.slot_map is not None
        assert {node.address[1] for node in pool.slot_map.nodes} == plain_ports
    finally:
        pool.close()
        await pool.wait_closed()


async def test_rediss_url_password_is_used_for_every_tls_node(
    dual_cluster: LocalCluster, tls_files: TlsFiles
) -> None:
    host, port = dual_cluster.startup_nodes[0]
    pool = await create_cluster_pool(
        [f"rediss://:{SECRET}@{host}:{port}?name=tls-url"], ssl=client_context(tls_files)
    )
    try:
        for i in range(30):
            assert await pool.execute("SET", f"tls-url:{i}", i) == b"OK"
        tls_ports = {n.port for n in dual_cluster.nodes}
        assert {node.address[1] for node in pool.slot_map.nodes} <= tls_ports  # type: ignore[union-attr]
        for node in dual_cluster.masters:  # the servers' view: the URL's name, on the TLS port
            ours = [c for c in _clients(node) if c.get("name") == "tls-url"]
            assert ours and {int(c["laddr"].rpartition(":")[2]) for c in ours} == {node.port}
    finally:
        pool.close()
        await pool.wait_closed()


def _announce(cluster: LocalCluster, plaintext: int | None) -> None:
    """Make every node announce ``plaintext`` as its plaintext port (None: its own),
    and wait until every node's ``CLUSTER SHARDS`` says so for every node."""
    for node in cluster.nodes:
        node.command("CONFIG", "SET", "cluster-announce-port", plaintext or 0,
                     "cluster-announce-tls-port", node.port if plaintext else 0)
    expected = {
        (node.port, plaintext or node.plaintext_port) for node in cluster.nodes
    }

    def announced() -> bool:
        for node in cluster.nodes:
            seen = set()
            for shard in node.command("CLUSTER", "SHARDS"):  # type: ignore[union-attr]
                for entry in dict(zip(shard[::2], shard[1::2], strict=True))["nodes"]:
                    fields = dict(zip(entry[::2], entry[1::2], strict=True))
                    seen.add((fields["tls-port"], fields.get("port")))
            if seen != expected:
                return False
        return True

    wait_until(announced, timeout=15, what=f"every node announcing plaintext {plaintext}")


async def test_tls_pool_never_connects_to_an_announced_plaintext_port(
    dual_cluster: LocalCluster, tls_files: TlsFiles
) -> None:
    # The nodes announce a recorder as their plaintext port: any connection a
    # TLS pool opened to a plaintext port would be counted there.
    async with FakeServer() as recorder:
        await asyncio.to_thread(_announce, dual_cluster, recorder.port)
        try:
            pool = await create_cluster_pool(
                dual_cluster.startup_nodes[:1], password=SECRET,
                ssl=client_context(tls_files), read_from="replica",
            )
            try:
                for i in range(30):
                    assert await pool.execute("SET", f"trap:{i}", i) == b"OK"
                    assert await pool.execute("GET", f"trap:{i}") == str(i).encode()
                await pool._waits.refresh_now("test")  # a reload reads the trap ports again
            finally:
                pool.close()
                await pool.wait_closed()
            assert recorder.accepted == 0, "the TLS pool connected to a plaintext port"
            # The trap works: a plaintext pool follows the announced port into it.
            first = dual_cluster.nodes[0]
            assert first.plaintext_port is not None
            with contextlib.suppress(RedisError):
                plain = await create_cluster_pool(
                    [(first.host, first.plaintext_port)], password=SECRET, connect_timeout=1
                )
                plain.close()
                await plain.wait_closed()
            assert recorder.accepted > 0
        finally:
            await asyncio.to_thread(_announce, dual_cluster, None)
