"""Sentinels given as ``rediss://[user:pass@]host:port`` URLs: TLS and the URL's
credentials are used for every sentinel connection (commands, event
subscriptions, sentinels learned later), never plaintext.

The group is TLS only (:class:`LocalSentinelGroup` with ``tls=``): every process
runs with ``port 0`` and a ``tls-port``, so the server cannot accept a
plaintext connection at all; whatever the client did reach, it reached over TLS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from clustermgr import create_connection
from clustermgr.errors import RedisError
from clustermgr.sentinel import create_sentinel, create_sentinel_pool
from clustermgr.testing import (
    LocalSentinelGroup,
    LocalServer,
    TlsFiles,
    client_context,
    make_certificates,
    tls_supported,
    wait_until,
)

DATA_SECRET = "Data-Tls-Pw-5e1a"
SENTINEL_SECRET = "Sentinel-Tls-Pw-77b0"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if not tls_supported():
        pytest.skip("redis-server was built without TLS")
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_group(tls_files: TlsFiles) -> Iterator[LocalSentinelGroup]:
    """TLS-only data nodes (client certificates required) and TLS-only sentinels
    (no client certificate asked, so the default verified context can reach them)."""
    with LocalSentinelGroup(
        tls=tls_files, password=DATA_SECRET, sentinel_password=SENTINEL_SECRET,
        sentinel_config=["tls-auth-clients no"],
    ) as group:
        yield group


@pytest.fixture
def trust_test_ca(tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``ssl.create_default_context()`` (what ``rediss://`` uses) trust the test CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))


def _subscribers(sentinel: LocalServer) -> int:
    """Clients of ``sentinel`` holding a pattern subscription (the pool's event links)."""
    text = str(sentinel.command("CLIENT", "LIST"))
    return sum(1 for line in text.splitlines() if " psub=1 " in line)


async def test_sentinel_ports_refuse_plaintext(tls_group: LocalSentinelGroup) -> None:
    for host, port in tls_group.sentinel_addresses:
        with pytest.raises(RedisError):
            conn = await create_connection((host, port), password=SENTINEL_SECRET, timeout=2)
            await conn.execute("PING")
    # The data nodes' own view: no plaintext listener (port 0), so every
    # connection the tests below make to them reached a TLS port.
    for server in [tls_group.master, *tls_group.replicas]:
        assert server.command("CONFIG", "GET", "port") == ["port", "0"], server.name
        assert server.command("CONFIG", "GET", "tls-port") == ["tls-port", str(server.port)]


async def test_rediss_sentinel_url_uses_tls_and_its_credentials(
    tls_group: LocalSentinelGroup, tls_files: TlsFiles, trust_test_ca: None
) -> None:
    # One sentinel given, as a rediss:// URL with its password; no sentinel_ssl,
    # no sentinel_password: the URL alone must give TLS and credentials, for it
    # and for the two sentinels learned from it.
    host, port = tls_group.sentinel_addresses[0]
    before = [_subscribers(s) for s in tls_group.sentinels]
    pool = await create_sentinel_pool(
        [f"rediss://:{SENTINEL_SECRET}@{host}:{port}"], tls_group.service,
        password=DATA_SECRET, ssl=client_context(tls_files), failover_timeout=5,
    )
    try:
        assert await pool.execute("SET", "tls:sentinel", "1") == b"OK"
        assert sorted(pool.sentinel.addresses) == sorted(tls_group.sentinel_addresses)
        # Every sentinel, the learned ones included, sees our event subscription.
        await asyncio.to_thread(
            wait_until,
            lambda: all(
                _subscribers(s) > b for s, b in zip(tls_group.sentinels, before, strict=True)
            ),
            timeout=10, what="an event subscription on every sentinel",
        )
        replies = await pool.sentinel.ask_all(b"PING")
        assert all(reply == b"PONG" for reply in replies.values()), replies
    finally:
        pool.close()
        await pool.wait_closed()


async def test_create_sentinel_with_rediss_url_and_explicit_context(
    tls_group: LocalSentinelGroup, tls_files: TlsFiles
) -> None:
    host, port = tls_group.sentinel_addresses[1]
    client = await create_sentinel(
        [f"rediss://:{SENTINEL_SECRET}@{host}:{port}"], ssl=client_context(tls_files),
        timeout=2,
    )
    try:
        master = await client.master(tls_group.service)
        assert int(master["port"]) == tls_group.master_address[1]
        assert len(await client.sentinels(tls_group.service)) == 2
    finally:
        client.close()
        await client.wait_closed()


async def test_plain_sentinel_url_credentials_are_used(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    group = local_sentinel_factory(replicas=0, sentinels=1, quorum=1,
                                   sentinel_password=SENTINEL_SECRET)
    host, port = group.sentinel_addresses[0]
    pool = await create_sentinel_pool(
        [f"redis://:{SENTINEL_SECRET}@{host}:{port}"], group.service, failover_timeout=5
    )
    try:
        assert await pool.execute("PING") == b"PONG"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_sentinel_url_options_that_cannot_apply_are_refused() -> None:
    for url in ("redis://127.0.0.1:26379/2", "redis://127.0.0.1:26379?encoding=utf-8"):
        with pytest.raises(ValueError, match="does not apply to sentinels"):
            await create_sentinel([url])
