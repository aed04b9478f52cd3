"""After a map moved slots while nodes refuse with CLUSTERDOWN, they are asked often.

The promoted replica says ``cluster_state:ok`` first; the other masters learn
the promotion tens of milliseconds later. A map apply that moves slots while
some nodes refuse with CLUSTERDOWN asks those nodes their ``CLUSTER INFO``
every ``hold_interval / 5`` until each says ok (the commands held there wake
then), instead of at the next poll (``hold_interval``). No server needed:
the node pools are never connected, the probe is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from clustermgr.cluster.nodes import NodePools
from clustermgr.cluster.refresh import RefreshOptions
from clustermgr.cluster.topology import Address, NodeInfo, Shard, SlotMap
from clustermgr.events import EventBus
from clustermgr.pool import ConnectionsPool
from clustermgr.slots import SLOT_COUNT

OLD, HEIR, OTHER = ("127.0.0.1", 7000), ("127.0.0.1", 7003), ("127.0.0.1", 7001)
HOLD = 0.5


def _map(first_owner: Address, epoch: int) -> SlotMap:
    half = SLOT_COUNT // 2
    a = Shard(NodeInfo(first_owner, node_id=f"n{first_owner[1]}"))
    b = Shard(NodeInfo(OTHER, node_id="n7001"))
    nodes = (a.master, b.master)
    return SlotMap(tuple([a] * half + [b] * (SLOT_COUNT - half)), epoch, OTHER, nodes)


async def test_a_move_while_a_node_refuses_asks_it_until_it_says_ok(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        return task

    nodes = NodePools(
        startup=[OTHER], read_from="master", options=RefreshOptions(hold_interval=HOLD),
        tls=False, conn_kwargs={}, events=EventBus(),
        create=lambda address: ConnectionsPool(address, minsize=0),
        set_routes=lambda routes, masters: None, set_readers=lambda readers: None,
        applied=lambda: None, spawn=spawn, forget=lambda pool: None, closed=lambda: False,
    )
    asked: list[tuple[Address, float]] = []

    async def probe_state(address: Address) -> None:
        asked.append((address, loop.time()))
        if len(asked) == 3:
            nodes.state.seen(address, ok=True)

    monkeypatch.setattr(nodes._maps, "probe_state", probe_state)
    try:
        nodes._apply(_map(OLD, 5), ["startup"])
        nodes._apply(_map(OLD, 5), ["no move, nothing refuses"])
        nodes.state.refused(OTHER)  # CLUSTERDOWN from the other master
        nodes._apply(_map(OLD, 5), ["no move"])
        await asyncio.sleep(HOLD / 2)
        assert asked == []  # nothing moved: the polls alone ask
        started = loop.time()
        nodes._apply(_map(HEIR, 6), ["promotion"])
        await asyncio.wait_for(asyncio.gather(*tasks), HOLD * 4)
        assert [a for a, _ in asked] == [OTHER] * 3  # until it said ok, then no more
        assert asked[-1][1] - started < HOLD, asked  # every HOLD / 5, not every HOLD
    finally:
        nodes.close()
        await nodes.wait_closed()
