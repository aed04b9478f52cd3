"""``address_remap``: a cluster whose nodes announce addresses the client cannot reach.

Each node of a real 3-master cluster announces ``node<i>.invalid:<fake port>``
(``cluster-announce-hostname`` + ``cluster-preferred-endpoint-type hostname`` +
``cluster-announce-port``), as nodes behind NAT or in containers do. Slot maps
and MOVED redirects then name only those addresses; the remap turns them into
the real ``127.0.0.1:<port>``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from clustermgr import errors
from clustermgr.cluster import RefreshOptions, create_cluster_pool, key_slot
from clustermgr.remap import AddressRemapError
from clustermgr.testing import LocalCluster

_FAKE_PORT = 1000  # node i announces port 1000 + i: nothing listens there


class Announced:
    """A 3-master cluster announcing unreachable addresses, and the remap that fixes them."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.real: dict[tuple[str, int], tuple[str, int]] = {}
        for index, node in enumerate(cluster.nodes):
            announced = (f"node{index}.invalid", _FAKE_PORT + index)
            self.real[announced] = ("127.0.0.1", node.port)
            node.command("CONFIG", "SET", "cluster-announce-hostname", announced[0])
            node.command("CONFIG", "SET", "cluster-preferred-endpoint-type", "hostname")
            node.command("CONFIG", "SET", "cluster-announce-port", str(announced[1]))
        self.calls: list[tuple[str, int]] = []
        deadline = time.monotonic() + 20
        while not self._announced_everywhere():
            if time.monotonic() > deadline:
                raise RuntimeError("announced addresses did not propagate")
            time.sleep(0.1)

    def _announced_everywhere(self) -> bool:
        """Every node lists every node by its announced hostname and port."""
        for node in self.cluster.nodes:
            listed = {
                (str(entry[2][0]), int(entry[2][1])) for entry in node.command("CLUSTER", "SLOTS")
            }
            if listed != set(self.real):
                return False
        return True

    def remap(self, host: str, port: int) -> tuple[str, int]:
        """The user's hook: announced -> real (KeyError for anything else)."""
        self.calls.append((host, port))
        return self.real[(host, port)]

    @property
    def startup(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.cluster.nodes[0].port)]

    def move_slot(self, slot: int, target_index: int) -> None:
        """Give the (empty) ``slot`` to node ``target_index`` on every node."""
        target = self.cluster.nodes[target_index]
        target_id = str(target.command("CLUSTER", "MYID"))
        nodes = [target, *(n for n in self.cluster.nodes if n is not target)]
        for node in nodes:
            node.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        # The target's claim must win everywhere: Valkey 8 can keep the previous
        # owner's claim, of a higher config epoch, on some node otherwise.
        target.command("CLUSTER", "BUMPEPOCH")
        deadline = time.monotonic() + 20
        while any(
            str(n.command("CLUSTER", "COUNTKEYSINSLOT", slot)) != "0"
            or target.port != _owner_port(n, slot, self)
            for n in self.cluster.nodes
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"slot {slot} did not move")
            time.sleep(0.1)


def _owner_port(node: Any, slot: int, announced: Announced) -> int:
    for entry in node.command("CLUSTER", "SLOTS"):
        start, end, master = int(entry[0]), int(entry[1]), entry[2]
        if start <= slot <= end:
            return announced.real[(str(master[0]), int(master[1]))][1]
    return -1


@pytest.fixture(scope="module")
def announced() -> Iterator[Announced]:
    with LocalCluster(masters=3, replicas_per_master=0) as cluster:
        yield Announced(cluster)


def _slot_owned_by(announced: Announced, index: int) -> tuple[bytes, int]:
    port = announced.cluster.nodes[index].port
    for i in range(10_000):
        key = f"key-{i}".encode()
        if _owner_port(announced.cluster.nodes[0], key_slot(key), announced) == port:
            return key, key_slot(key)
    raise AssertionError("no key found")


async def test_without_a_remap_the_announced_addresses_cannot_be_used(
    announced: Announced,
) -> None:
    # No master can open its connections: creation fails with the first error, as
    # create_pool does (refused, or timed out: the .invalid lookup may be slow).
    with pytest.raises((errors.ConnectError, errors.TimeoutError), match=r"invalid"):
        pool = await create_cluster_pool(announced.startup, retry_timeout=1, connect_timeout=0.5)
        pool.close()
        await pool.wait_closed()


async def test_the_remap_serves_every_node_of_the_slot_map(announced: Announced) -> None:
    pool = await create_cluster_pool(
        announced.startup, address_remap=announced.remap, retry_timeout=3
    )
    try:
        keys = [f"k{i}".encode() for i in range(60)]
        for key in keys:
            assert await asyncio.wait_for(pool.execute(b"SET", key, key), 10) == b"OK"
        assert await pool.execute(b"MGET", *keys) == keys
        assert set(pool.node_pools) == set(announced.real.values())
        owners = {pool.slot_owner(key_slot(k)) for k in keys}
        assert owners == set(announced.real.values())
        assert set(announced.calls) == set(announced.real)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_the_remap_is_applied_to_moved_redirects(announced: Announced) -> None:
    key, slot = _slot_owned_by(announced, 0)
    pool = await create_cluster_pool(
        announced.startup, address_remap=announced.remap, retry_timeout=3,
        refresh=RefreshOptions(period=None),
    )
    try:
        assert await pool.execute(b"GET", key) is None
        announced.move_slot(slot, 1)
        try:
            calls = len(announced.calls)
            assert await asyncio.wait_for(pool.execute(b"SET", key, b"moved"), 10) == b"OK"
            assert pool.slot_owner(slot) == ("127.0.0.1", announced.cluster.nodes[1].port)
            assert ("node1.invalid", _FAKE_PORT + 1) in announced.calls[calls:]
        finally:
            await pool.execute(b"DEL", key)
            announced.move_slot(slot, 0)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_failing_remap_fails_the_pool_with_a_typed_error(announced: Announced) -> None:
    def broken(host: str, port: int) -> tuple[str, int]:
        raise LookupError(f"no route to {host}")

    with pytest.raises(AddressRemapError, match="no route to node"):
        await asyncio.wait_for(
            create_cluster_pool(announced.startup, address_remap=broken), 10
        )

    def garbage(host: str, port: int) -> tuple[str, int]:
        return ("127.0.0.1", "6379")  # type: ignore[return-value]

    with pytest.raises(AddressRemapError, match="not a \\(host, port\\) pair"):
        await asyncio.wait_for(
            create_cluster_pool(announced.startup, address_remap=garbage), 10
        )


async def test_a_failing_remap_of_a_redirect_fails_that_command_typed(
    announced: Announced,
) -> None:
    key, slot = _slot_owned_by(announced, 0)
    fail = False

    def remap(host: str, port: int) -> tuple[str, int]:
        if fail and host == "node2.invalid":
            raise LookupError("node2 is not mapped")
        return announced.remap(host, port)

    pool = await create_cluster_pool(
        announced.startup, address_remap=remap, retry_timeout=3,
        refresh=RefreshOptions(period=None),
    )
    try:
        announced.move_slot(slot, 2)
        fail = True
        try:
            started = time.monotonic()
            with pytest.raises(AddressRemapError, match="node2 is not mapped") as caught:
                await asyncio.wait_for(pool.execute(b"GET", key), 10)
            assert caught.value.address == ("node2.invalid", _FAKE_PORT + 2)
            assert not caught.value.may_have_executed
            assert time.monotonic() - started < 2  # not retried until the budget ends
        finally:
            fail = False
            announced.move_slot(slot, 0)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_waitreplicas_follows_an_ask_to_the_remapped_node(announced: Announced) -> None:
    # The ASK names node1.invalid:1001; WaitReplicas must send the write there
    # through the remapped node pool (the nodes have no replica: WAIT counts 0).
    from clustermgr.replication import NotReplicatedError, WaitReplicas
    from clustermgr.testing.cluster import SlotMigration

    key, slot = _slot_owned_by(announced, 0)
    source, target = announced.cluster.nodes[0], announced.cluster.nodes[1]
    pool = await create_cluster_pool(
        announced.startup, address_remap=announced.remap, retry_timeout=3
    )
    migration = SlotMigration(announced.cluster, slot, source, target)
    migration.begin()
    try:
        writer = WaitReplicas(pool, replicas=1, timeout=0.1, max_attempts=4)
        with pytest.raises(NotReplicatedError) as raised:
            await asyncio.wait_for(writer.execute(b"SET", key, b"asked"), 10)
        assert raised.value.acked == 0
    finally:
        try:
            migration.finish()  # the key written on the target stays there, owned
        finally:
            pool.close()
            await pool.wait_closed()
    try:
        assert target.command("GET", key) in (b"asked", "asked")
    finally:
        target.command("DEL", key)
