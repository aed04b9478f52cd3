"""``cluster-preferred-endpoint-type unknown-endpoint``: "the host you sent the command to".

Redis' documented meaning of an empty (``CLUSTER SHARDS``) or NULL (``CLUSTER
SLOTS``) endpoint and of ``MOVED <slot> :<port>``: connect to the host the reply
came from, on the port given -- the setup of nodes behind a load balancer whose
name the nodes do not know. The pool here reaches the nodes as ``localhost``;
their ip (``127.0.0.1``) must not be used instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from clustermgr.cluster import RefreshOptions, create_cluster_pool, key_slot
from clustermgr.cluster.topology import parse_shards, parse_slots
from clustermgr.events import Redirect
from clustermgr.testing import LocalCluster


@pytest.fixture(scope="module")
def unknown() -> Iterator[LocalCluster]:
    with LocalCluster(masters=3, replicas_per_master=0) as cluster:
        for node in cluster.nodes:
            node.command("CONFIG", "SET", "cluster-preferred-endpoint-type", "unknown-endpoint")
        yield cluster


def test_an_empty_shards_endpoint_is_the_host_that_answered() -> None:
    reply = [[
        b"slots", [0, 16383],
        b"nodes", [[b"id", b"a" * 40, b"port", 7001, b"ip", b"10.0.0.5", b"endpoint", b"",
                    b"role", b"master", b"health", b"online"]],
    ]]
    slot_map = parse_shards(reply, source=("lb.example", 7000))
    assert slot_map.masters[0].address == ("lb.example", 7001)


def test_a_null_slots_endpoint_is_the_host_that_answered() -> None:
    reply = [[0, 16383, [None, 7001, b"a" * 40, [b"ip", b"10.0.0.5"]]]]
    slot_map = parse_slots(reply, source=("lb.example", 7000))
    assert slot_map.masters[0].address == ("lb.example", 7001)


def test_a_question_mark_endpoint_is_an_unknown_node_reached_by_its_ip() -> None:
    # "?" (hostname preferred, none set): not necessarily the node that answered.
    shards = [[
        b"slots", [0, 16383],
        b"nodes", [[b"id", b"a" * 40, b"port", 7001, b"ip", b"10.0.0.5", b"endpoint", b"?",
                    b"role", b"master", b"health", b"online"]],
    ]]
    slots = [[0, 16383, [b"?", 7001, b"a" * 40, [b"ip", b"10.0.0.5"]]]]
    assert parse_shards(shards, source=("lb", 7000)).masters[0].address == ("10.0.0.5", 7001)
    assert parse_slots(slots, source=("lb", 7000)).masters[0].address == ("10.0.0.5", 7001)


async def test_unknown_endpoints_are_reached_on_the_host_used(unknown: LocalCluster) -> None:
    pool = await create_cluster_pool([("localhost", unknown.nodes[0].port)], retry_timeout=3)
    try:
        assert {host for host, _port in pool.node_pools} == {"localhost"}
        assert {port for _host, port in pool.node_pools} == {n.port for n in unknown.nodes}
        for i in range(30):
            assert await pool.execute(b"SET", f"u{i}", b"v") == b"OK"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_moved_with_an_empty_host_goes_to_the_host_used(unknown: LocalCluster) -> None:
    first = unknown.nodes[0]
    key = next(
        f"m{i}".encode() for i in range(10_000)
        if unknown.node_for_slot(key_slot(f"m{i}")).port == first.port
    )
    slot = key_slot(key)
    pool = await create_cluster_pool(
        [("localhost", first.port)], retry_timeout=3, refresh=RefreshOptions(period=None)
    )
    redirects: list[Redirect] = []
    pool.events.subscribe(redirects.append, Redirect)
    target = unknown.nodes[1]
    try:
        unknown.migrate_slot(slot, target)
        assert await asyncio.wait_for(pool.execute(b"SET", key, b"v"), 10) == b"OK"
        assert [r.to_node for r in redirects] == [("localhost", target.port)]
        assert pool.slot_owner(slot) == ("localhost", target.port)
    finally:
        unknown.migrate_slot(slot, first)
        pool.close()
        await pool.wait_closed()
