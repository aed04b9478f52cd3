"""``lazy=True``: the factory returns at once, the first command connects.

A server that is not up yet is not an error until a command needs it; once it
is up, the same pool works. Each case puts the server (or the only known
cluster node / sentinel) behind a :class:`FaultProxy` refusing connections,
or uses a port nothing listens on yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from clustermgr import create_pool, create_sentinel_pool
from clustermgr.cluster import CommandTable, create_cluster_pool
from clustermgr.credentials import CredentialProviderError
from clustermgr.errors import AuthError, ClusterRetryError, ConnectError, MasterNotFoundError
from clustermgr.remap import AddressRemapError
from clustermgr.testing import (
    FaultProxy,
    LocalCluster,
    LocalSentinelGroup,
    LocalStandalone,
    find_free_port,
)

pytestmark = pytest.mark.timeout(90)


async def test_a_lazy_pool_connects_at_the_first_command() -> None:
    port = find_free_port()
    started = time.monotonic()
    pool = await create_pool(("127.0.0.1", port), lazy=True, create_connection_timeout=1)
    try:
        assert time.monotonic() - started < 0.5
        assert pool.size == 0
        with pytest.raises(ConnectError):  # nothing listens yet: the command fails, typed
            await asyncio.wait_for(pool.execute(b"PING"), 10)
        with LocalStandalone(port=port):
            await asyncio.sleep(0.1)  # past the connect backoff window of the failed connect
            assert await asyncio.wait_for(pool.execute(b"PING"), 10) == b"PONG"
            assert pool.size >= 1
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_lazy_cluster_pool_reads_the_slot_map_at_the_first_command(
    redis_cluster: LocalCluster,
) -> None:
    with FaultProxy(redis_cluster.nodes[0].address, name="seed") as seed:
        seed.refuse()
        started = time.monotonic()
        pool = await create_cluster_pool([seed.address], lazy=True, retry_timeout=1)
        try:
            assert time.monotonic() - started < 0.5
            assert seed.accepted == 0 and seed.refused == 0  # nothing was tried
            assert pool.slot_map is None
            with pytest.raises(ClusterRetryError):  # the seed is "down": typed, bounded
                await asyncio.wait_for(pool.execute(b"SET", b"lazy:k", b"v"), 10)
            assert seed.refused >= 1
            seed.refuse(False)
            assert await asyncio.wait_for(pool.execute(b"SET", b"lazy:k", b"v"), 10) == b"OK"
            assert await pool.execute(b"GET", b"lazy:k") == b"v"
            assert pool.slot_map is not None and pool.slot_map.covered == 16384
            builtin = len(CommandTable.builtin())
            for _ in range(100):  # the server's command table is read after the first map
                if len(pool.commands) > builtin:
                    break
                await asyncio.sleep(0.02)
            assert len(pool.commands) > builtin
        finally:
            pool.close()
            await pool.wait_closed()


async def test_a_lazy_sentinel_pool_discovers_at_the_first_command(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    group = local_sentinel_factory(replicas=0, sentinels=1, quorum=1)
    with FaultProxy(group.sentinel_addresses[0], name="sentinel") as sentinel:
        sentinel.refuse()
        started = time.monotonic()
        pool = await create_sentinel_pool(
            [sentinel.address], group.service, lazy=True, failover_timeout=1,
        )
        try:
            assert time.monotonic() - started < 0.5
            await asyncio.sleep(0.2)
            assert sentinel.accepted == 0 and sentinel.refused == 0
            with pytest.raises(MasterNotFoundError) as caught:  # no sentinel yet: typed, bounded
                await asyncio.wait_for(pool.execute(b"SET", b"lazy:s", b"v"), 10)
            assert "no sentinel gave a usable answer" in str(caught.value)
            assert f"{sentinel.address[0]}:{sentinel.address[1]}" in str(caught.value)
            sentinel.refuse(False)
            assert await asyncio.wait_for(pool.execute(b"SET", b"lazy:s", b"v"), 10) == b"OK"
            assert pool.address == group.master.address
        finally:
            pool.close()
            await pool.wait_closed()


def _broken_remap(host: str, port: int) -> tuple[str, int]:
    raise KeyError((host, port))


def _broken_provider() -> tuple[str, str]:
    raise RuntimeError("token service down")


async def test_a_lazy_cluster_pool_fails_its_first_command_at_once_with_a_cause_never_retried(
) -> None:
    # What the non-lazy factory would raise at once ends the first command at
    # once, typed, instead of a "no route" ClusterRetryError after retry_timeout.
    cases: list[tuple[dict[str, Any], type[BaseException], str]] = [
        ({"password": "wrong"}, AuthError, "WRONGPASS"),
        ({"password": "right", "address_remap": _broken_remap}, AddressRemapError, "KeyError"),
        ({"credential_provider": _broken_provider}, CredentialProviderError, "token service"),
    ]
    with LocalCluster(masters=3, replicas_per_master=0, password="right") as cluster:
        for options, kind, text in cases:
            pool = await create_cluster_pool(
                cluster.startup_nodes[:1], lazy=True, retry_timeout=5, **options
            )
            try:
                started = time.monotonic()
                with pytest.raises(kind, match=text):
                    await asyncio.wait_for(pool.execute(b"GET", b"lazy:x"), 10)
                assert time.monotonic() - started < 2, options
            finally:
                pool.close()
                await pool.wait_closed()


async def test_a_lazy_sentinel_pool_fails_its_first_command_at_once_with_a_cause_never_retried(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    group = local_sentinel_factory(replicas=0, sentinels=1, quorum=1)
    cases: list[tuple[dict[str, Any], type[BaseException], str]] = [
        ({"address_remap": _broken_remap}, AddressRemapError, "KeyError"),
        ({"credential_provider": _broken_provider}, CredentialProviderError, "token service"),
    ]
    for options, kind, text in cases:
        pool = await create_sentinel_pool(
            group.sentinel_addresses, group.service, lazy=True, failover_timeout=5, **options
        )
        try:
            started = time.monotonic()
            with pytest.raises(kind, match=text):
                await asyncio.wait_for(pool.execute(b"SET", b"lazy:s", b"v"), 10)
            assert time.monotonic() - started < 2, options
        finally:
            pool.close()
            await pool.wait_closed()
