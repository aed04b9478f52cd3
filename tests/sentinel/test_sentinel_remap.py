"""``address_remap`` on a sentinel pool: master and replica addresses as the sentinels name them.

Each data node of a real sentinel group sits behind a :class:`FaultProxy` (a
port mapping, as NAT or a container runtime makes); the sentinels name the
nodes' own addresses, the remap turns them into the proxies'. Discovery,
the replica list and the failover events (``+switch-master``) go through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from clustermgr import create_sentinel_pool
from clustermgr.remap import AddressRemapError
from clustermgr.testing import FaultProxy, LocalSentinelGroup

pytestmark = pytest.mark.timeout(90)

Factory = Callable[..., LocalSentinelGroup]


class Mapped:
    """Proxies in front of the data nodes and the remap that points to them."""

    def __init__(self, group: LocalSentinelGroup) -> None:
        self.group = group
        self.proxies = {n.address: FaultProxy(n.address, name=n.name).start()
                        for n in group.data_nodes}
        self.asked: list[tuple[str, int]] = []

    def remap(self, host: str, port: int) -> tuple[str, int]:
        """Data nodes -> their proxy; anything else (sentinels) as it is."""
        self.asked.append((host, port))
        proxy = self.proxies.get((host, port))
        return proxy.address if proxy is not None else (host, port)

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.close()


@pytest.fixture
def mapped(local_sentinel_factory: Factory) -> Iterator[Mapped]:
    found = Mapped(local_sentinel_factory(replicas=1))
    try:
        yield found
    finally:
        found.close()


async def test_the_master_is_reached_through_the_remap_and_followed_over_a_failover(
    mapped: Mapped,
) -> None:
    group = mapped.group
    old, new = group.master, group.replicas[0]
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, address_remap=mapped.remap,
        failover_timeout=20,
    )
    try:
        assert pool.address == mapped.proxies[old.address].address
        assert await pool.execute("SET", "remap:1", "v") == b"OK"
        assert mapped.proxies[old.address].accepted >= 1
        await asyncio.to_thread(group.failover)
        for _ in range(200):  # bounded: until the pool moved
            if pool.address == mapped.proxies[new.address].address:
                break
            await asyncio.sleep(0.05)
        assert await asyncio.wait_for(pool.execute("SET", "remap:2", "v"), 20) == b"OK"
        assert pool.address == mapped.proxies[new.address].address
        assert new.command("GET", "remap:2") == "v"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_replicas_are_reached_through_the_remap(mapped: Mapped) -> None:
    group = mapped.group
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, role="replica", address_remap=mapped.remap,
    )
    try:
        replica = group.replicas[0]
        assert pool.replica_addresses == [mapped.proxies[replica.address].address]
        assert await pool.execute("PING") == b"PONG"
        assert mapped.proxies[replica.address].accepted >= 1
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_failing_remap_fails_the_sentinel_pool_typed(
    local_sentinel_factory: Factory,
) -> None:
    group = local_sentinel_factory(replicas=0)

    def broken(host: str, port: int) -> tuple[str, int]:
        raise LookupError(f"{host}:{port} is not mapped")

    with pytest.raises(AddressRemapError, match="is not mapped") as caught:
        await asyncio.wait_for(create_sentinel_pool(
            group.sentinel_addresses, group.service, address_remap=broken,
        ), 20)
    assert caught.value.address == group.master.address


async def test_a_sentinel_reconnect_compares_its_master_through_the_remap(
    mapped: Mapped, caplog: pytest.LogCaptureFixture,
) -> None:
    """After a sentinel's event connection comes back, the master it names is
    compared with the pool's remapped one: the same master is not rediscovered."""
    group = mapped.group
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, address_remap=mapped.remap,
    )
    try:
        assert await pool.execute("SET", "remap:r", "v") == b"OK"
        caplog.set_level("INFO", logger="clustermgr.sentinel")
        for sentinel in group.sentinels:
            sentinel.command("CLIENT", "KILL", "TYPE", "pubsub")
        await asyncio.sleep(3.0)  # the monitor reconnects and compares views
        rediscovered = [r.getMessage() for r in caplog.records if "rediscovering" in r.getMessage()]
        assert rediscovered == []
        assert await pool.execute("GET", "remap:r") == b"v"
    finally:
        pool.close()
        await pool.wait_closed()
