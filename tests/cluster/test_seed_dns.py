"""Seed hostnames are looked up again when every known node has failed.

A whole cluster is replaced behind the same name (a DNS record moved to new
machines). The name ``cluster.test:7000`` is served by a resolver of the test's
own (the event loop's ``getaddrinfo``, patched) that the test points at a node
of the first real cluster, then of a second one; the first cluster is stopped.
clustermgr keeps the seed as a name and connects by name, so the lookup happens
again each time the seed is asked.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

from clustermgr.cluster import create_cluster_pool
from clustermgr.testing import LocalCluster

pytestmark = pytest.mark.timeout(120)

_NAME = "cluster.test"


async def test_a_cluster_replaced_behind_the_seed_name_is_followed(
    local_cluster_factory: Callable[..., LocalCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = local_cluster_factory(masters=3, replicas_per_master=0)
    new = local_cluster_factory(masters=3, replicas_per_master=0)
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo
    target = {"port": old.nodes[0].port}
    lookups: list[int] = []

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == _NAME:
            lookups.append(target["port"])
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                     ("127.0.0.1", target["port"]))]
        return await real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    pool = await create_cluster_pool([(_NAME, 7000)], retry_timeout=10, connect_timeout=1)
    try:
        assert await pool.execute(b"SET", b"dns:k", b"old") == b"OK"
        assert {a[1] for a in pool.node_pools} == {n.port for n in old.nodes}
        old.stop()  # every known node is gone
        target["port"] = new.nodes[0].port  # the name now points to the new cluster
        await asyncio.sleep(0.3)  # the pool sees its connections closed (none in flight)
        assert await asyncio.wait_for(pool.execute(b"SET", b"dns:k", b"new"), 20) == b"OK"
        assert await pool.execute(b"GET", b"dns:k") == b"new"
        assert {a[1] for a in pool.node_pools} == {n.port for n in new.nodes}
        assert new.nodes[0].port in lookups
    finally:
        pool.close()
        await pool.wait_closed()
