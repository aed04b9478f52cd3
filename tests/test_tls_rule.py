"""One rule for every factory: a ``rediss://`` address and an explicit ``ssl=False``
conflict, and are refused before anything is sent (never plaintext with the
password in the clear)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fake_server import FakeServer

from clustermgr import create_connection, create_pool
from clustermgr.address import parse_address
from clustermgr.cluster import create_cluster_pool
from clustermgr.sentinel import create_sentinel, create_sentinel_pool
from clustermgr.tlsopts import TlsConflictError, resolve_tls

SECRET = "Tls-Rule-Pw-93c1"

Factory = Callable[[str], Awaitable[Any]]

FACTORIES: dict[str, Factory] = {
    "create_connection": lambda url: create_connection(url, ssl=False, timeout=1),
    "create_pool": lambda url: create_pool(url, ssl=False, create_connection_timeout=1),
    "create_cluster_pool": lambda url: create_cluster_pool([url], ssl=False, connect_timeout=1),
    "create_sentinel": lambda url: create_sentinel([url], ssl=False, timeout=1),
    "create_sentinel_pool": lambda url: create_sentinel_pool(
        [url], "svc", sentinel_ssl=False, failover_timeout=1
    ),
}


@pytest.mark.parametrize("factory", sorted(FACTORIES))
async def test_rediss_url_with_ssl_false_is_refused_before_connecting(factory: str) -> None:
    async with FakeServer() as server:
        url = f"rediss://app:{SECRET}@127.0.0.1:{server.port}"
        with pytest.raises(TlsConflictError) as info:
            result = await FACTORIES[factory](url)
            result.close()
            await result.wait_closed()
        assert server.accepted == 0, "a plaintext connection was opened"
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "ssl=False" in message and "rediss://" in message
    assert SECRET not in message


def test_resolve_tls_table() -> None:
    plain, tls = parse_address("redis://h:1"), parse_address("rediss://h:2")
    assert resolve_tls([plain], None) is None
    assert resolve_tls([plain], False) is False
    assert resolve_tls([tls], None) is True
    assert resolve_tls([plain, tls], None) is True
    assert resolve_tls([tls], True) is True
    with pytest.raises(TlsConflictError, match="sentinel_ssl=False"):
        resolve_tls([plain, tls], False, option="sentinel_ssl")
