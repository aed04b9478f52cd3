"""TLS (``rediss://``, verification on by default, CA and client certs), ACL users,
and credentials never showing up in logs, reprs or exception messages.

TLS servers are real ``redis-server`` processes with a ``tls-port`` and
throwaway certificates made with the ``openssl`` CLI
(:mod:`clustermgr.testing.tls`); the tests skip if the binary has no TLS.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clustermgr import create_connection, create_pool
from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import (
    AuthError,
    ConnectError,
    ConnectionClosedError,
    NoPermissionError,
    RedisError,
)
from clustermgr.sentinel import create_sentinel_pool
from clustermgr.testing import (
    LocalCluster,
    LocalSentinelGroup,
    LocalServer,
    LocalStandalone,
    TlsFiles,
    client_context,
    find_free_port,
    make_certificates,
    tls_config,
    tls_supported,
)

USER = "app"
SECRET = "S3cr3t-Pw-7f1dQ"  # distinctive, so a leak cannot hide in other text
READER_SECRET = "R3ader-Pw-c0ffee"
WRONG = "Wr0ng-Pw-deadbeef"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if not tls_supported():
        pytest.skip("redis-server was built without TLS")
    return make_certificates(tmp_path_factory.mktemp("certs"))


class TlsServer:
    def __init__(self, topology: LocalStandalone, tls_port: int) -> None:
        self.topology = topology
        self.tls_port = tls_port

    def url(self, user: str | None = USER, password: str | None = SECRET) -> str:
        auth = f"{user or ''}:{password}@" if password is not None else ""
        return f"rediss://{auth}127.0.0.1:{self.tls_port}"


def _tls_server(files: TlsFiles, auth_clients: bool) -> Iterator[TlsServer]:
    port = find_free_port()
    reader_acl = f"user reader on >{READER_SECRET} ~ro:* +get +ping"
    with LocalStandalone(
        username=USER, password=SECRET,
        config=[*tls_config(files, port, auth_clients=auth_clients), reader_acl],
    ) as topology:
        yield TlsServer(topology, port)


@pytest.fixture(scope="module")
def tls_server(tls_files: TlsFiles) -> Iterator[TlsServer]:
    """ACL user ``app`` + a read-only ``reader``; TLS with client certificates required."""
    yield from _tls_server(tls_files, auth_clients=True)


@pytest.fixture
def leak_check(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[..., None]]:
    """``leak_check(*objects_or_texts)``: no secret in them, nor in any log record so far."""
    caplog.set_level(logging.DEBUG, logger="clustermgr")
    caplog.set_level(logging.DEBUG, logger="asyncio")

    def check(*items: Any) -> None:
        texts = []
        for item in items:
            if isinstance(item, BaseException):
                texts.append("".join(traceback.format_exception(item)))
                texts.append(repr(item))
            else:
                texts += [str(item), repr(item)]
        for record in caplog.records:
            texts.append(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                texts.append("".join(traceback.format_exception(record.exc_info[1])))
        for text in texts:
            for secret in (SECRET, READER_SECRET, WRONG):
                assert secret not in text, f"secret leaked in: {text[:300]}"

    yield check
    check()


# -- TLS ---------------------------------------------------------------------------------


async def test_rediss_verifies_certificates_by_default(
    tls_server: TlsServer, leak_check: Callable[..., None]
) -> None:
    # The test CA is not in the system store: the handshake must be refused.
    with pytest.raises(ConnectError) as info:
        await create_connection(tls_server.url(), timeout=5)
    assert "certificate" in str(info.value).lower() or "ssl" in str(info.value).lower()
    assert info.value.may_have_executed is False
    with pytest.raises(ConnectError):
        await create_pool(tls_server.url(), create_connection_timeout=5)
    leak_check(info.value)


def test_generated_certificates_pass_strict_x509_verification(
    tls_server: TlsServer, tls_files: TlsFiles
) -> None:
    # Python 3.13's create_default_context() sets VERIFY_X509_STRICT; set it here
    # explicitly so every Python checks the launcher's certificates the same way.
    context = client_context(tls_files)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    address = ("127.0.0.1", tls_server.tls_port)
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        names = set(tls.getpeercert()["subjectAltName"])
        assert names == {("DNS", "localhost"), ("IP Address", "127.0.0.1")}


async def test_rediss_with_ca_and_client_certificate(
    tls_server: TlsServer, tls_files: TlsFiles, leak_check: Callable[..., None]
) -> None:
    pool = await create_pool(tls_server.url(), ssl=client_context(tls_files), minsize=2)
    try:
        assert await pool.execute("SET", "tls:k", "v") == b"OK"
        assert await pool.execute("GET", "tls:k") == b"v"
        assert await pool.execute("ACL", "WHOAMI") == USER.encode()
        async with pool.get() as conn:
            transport = conn._writer.transport  # type: ignore[attr-defined]
            assert transport.get_extra_info("ssl_object") is not None
            assert transport.get_extra_info("peercert")["subjectAltName"]
        # The server's view: the pool's connections (user app) reached the TLS port
        # only, not the server's plaintext port.
        server = tls_server.topology.server
        ours = [c for c in _clients(server) if c.get("user") == USER]
        assert len(ours) >= 2
        assert {int(c["laddr"].rpartition(":")[2]) for c in ours} == {tls_server.tls_port}
        assert server.port != tls_server.tls_port
        leak_check(pool, pool.server_address, conn)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_tls_client_certificate_required(
    tls_server: TlsServer, tls_files: TlsFiles, leak_check: Callable[..., None]
) -> None:
    context = client_context(tls_files, client_cert=False)
    with pytest.raises((ConnectError, ConnectionClosedError)) as info:
        # AUTH is part of the handshake, so the refused certificate surfaces here.
        await create_connection(tls_server.url(), ssl=context, timeout=5)
    leak_check(info.value)


async def test_tls_wrong_ca_is_refused(
    tls_server: TlsServer, tmp_path: Path, leak_check: Callable[..., None]
) -> None:
    other = make_certificates(tmp_path / "other")
    context = ssl.create_default_context(cafile=str(other.ca_cert))
    context.load_cert_chain(str(other.client_cert), str(other.client_key))
    with pytest.raises(ConnectError) as info:
        await create_connection(tls_server.url(), ssl=context, timeout=5)
    leak_check(info.value)


async def test_cluster_rediss_startup_node_never_falls_back_to_plaintext(
    redis_cluster: LocalCluster,
) -> None:
    # Regression: the scheme of cluster startup URLs was dropped, so rediss://
    # silently connected in plaintext. The nodes here speak plaintext only.
    host, port = redis_cluster.startup_nodes[0]
    node = next(n for n in redis_cluster.nodes if n.port == port)
    before = _commands_run(node)
    with pytest.raises(ConnectError):
        pool = await create_cluster_pool([f"rediss://{host}:{port}"], connect_timeout=2)
        pool.close()
        await pool.wait_closed()
    # The server's view: the TLS handshake bytes it got were no command.
    assert _commands_run(node) == before
    # The check sees a plaintext pool: its slot map query is counted.
    pool = await create_cluster_pool([f"redis://{host}:{port}"], connect_timeout=2)
    pool.close()
    await pool.wait_closed()
    assert _commands_run(node) != before


def _clients(node: LocalServer) -> list[dict[str, str]]:
    """``CLIENT LIST`` of ``node`` as fields, without the connection asking."""
    clients = []
    for line in str(node.command("CLIENT", "LIST")).splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("cmd") != "client|list":
            clients.append(fields)
    return clients


def _commands_run(node: LocalServer) -> dict[str, str]:
    """``INFO commandstats`` call counts of ``node``, without the ones other servers
    and the test itself send (INFO, replication's REPLCONF and PING)."""
    stats = node.info("commandstats")
    return {
        name: value.split(",")[0] for name, value in stats.items()
        if name not in ("cmdstat_info", "cmdstat_replconf", "cmdstat_ping")
    }


# -- ACL users -----------------------------------------------------------------------------


async def test_acl_user_permissions_and_wrong_password(
    tls_server: TlsServer, tls_files: TlsFiles, leak_check: Callable[..., None]
) -> None:
    context = client_context(tls_files)
    reader = await create_connection(
        tls_server.url("reader", READER_SECRET), ssl=context, timeout=5
    )
    try:
        assert await reader.execute("GET", "ro:nothing") is None
        with pytest.raises(NoPermissionError) as denied:
            await reader.execute("SET", "ro:x", "1")
        assert denied.value.may_have_executed is False
        with pytest.raises(NoPermissionError):
            await reader.execute("GET", "other:key")
        leak_check(reader, denied.value)
    finally:
        reader.close()
        await reader.wait_closed()
    errors: list[BaseException] = []
    for url in (tls_server.url("reader", WRONG), tls_server.url(USER, WRONG),
                tls_server.url(None, WRONG)):
        with pytest.raises(AuthError) as info:
            await create_connection(url, ssl=context, timeout=5)
        assert info.value.may_have_executed is False
        errors.append(info.value)
        with pytest.raises(AuthError) as info:
            await create_pool(url, ssl=context, create_connection_timeout=5)
        errors.append(info.value)
    leak_check(*errors)


# -- credentials in logs, reprs and errors ----------------------------------------------------


async def test_standalone_reconnects_and_errors_do_not_leak(
    local_standalone_factory: Callable[..., LocalStandalone], leak_check: Callable[..., None]
) -> None:
    server = local_standalone_factory(username=USER, password=SECRET)
    url = f"redis://{USER}:{SECRET}@127.0.0.1:{server.port}/0?name=leaky"
    pool = await create_pool(url, minsize=2)
    try:
        await pool.execute_pubsub("SUBSCRIBE", "sec:chan")
        resubscribed = asyncio.Event()
        pool.on_resubscribed = lambda *_: resubscribed.set()
        server.server.command("CLIENT", "KILL", "TYPE", "pubsub")
        server.server.command("CLIENT", "KILL", "TYPE", "normal")
        await asyncio.wait_for(resubscribed.wait(), 10)
        assert await pool.execute("PING") == b"PONG"
        server.kill()
        with pytest.raises(RedisError) as down:
            await asyncio.wait_for(pool.execute("PING"), 5)
        await asyncio.sleep(0.3)  # pub/sub reconnect attempts log their failures
        server.restart()
        leak_check(pool, pool.server_address, down.value)
    finally:
        pool.close()
        await pool.wait_closed()
    with pytest.raises(AuthError) as wrong:
        await create_pool(f"redis://{USER}:{WRONG}@127.0.0.1:{server.port}")
    with pytest.raises(ConnectError) as refused:
        await create_connection(
            f"redis://{USER}:{SECRET}@127.0.0.1:{find_free_port()}", timeout=2
        )
    leak_check(wrong.value, refused.value)


async def test_cluster_pool_does_not_leak(
    local_cluster_factory: Callable[..., LocalCluster], leak_check: Callable[..., None]
) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=0, password=SECRET)
    pool = await create_cluster_pool(cluster.startup_nodes, password=SECRET)
    try:
        assert await pool.execute("SET", "sec:{a}", "1") == b"OK"
        node = cluster.node_for_key("sec:{a}")
        node.command("CLIENT", "KILL", "TYPE", "normal")
        assert await asyncio.wait_for(pool.execute("GET", "sec:{a}"), 10) == b"1"
        leak_check(pool, *pool.node_pools.values())
    finally:
        pool.close()
        await pool.wait_closed()
    with pytest.raises(RedisError) as wrong:
        await create_cluster_pool(cluster.startup_nodes, password=WRONG, connect_timeout=2)
    leak_check(wrong.value)


async def test_sentinel_pool_does_not_leak(
    local_sentinel_factory: Callable[..., LocalSentinelGroup], leak_check: Callable[..., None]
) -> None:
    group = local_sentinel_factory(password=SECRET, sentinel_password=READER_SECRET)
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, password=SECRET,
        sentinel_password=READER_SECRET,
    )
    try:
        assert await pool.execute("SET", "sec:s", "1") == b"OK"
        group.master.command("CLIENT", "KILL", "TYPE", "normal")
        assert await asyncio.wait_for(pool.execute("GET", "sec:s"), 10) == b"1"
        leak_check(pool, pool.sentinel)
    finally:
        pool.close()
        await pool.wait_closed()
    errors = []
    for kwargs in ({"password": WRONG, "sentinel_password": READER_SECRET},
                   {"password": SECRET, "sentinel_password": WRONG}):
        with pytest.raises(RedisError) as info:
            await create_sentinel_pool(
                group.sentinel_addresses, group.service, failover_timeout=2, **kwargs
            )
        errors.append(info.value)
    leak_check(*errors)
