"""One small adapter per client: connect, set, get, batch of sets, close.

Every adapter hands back the library's own awaitable from :meth:`Adapter.set`
and :meth:`Adapter.get` (no extra coroutine frame of ours), and writes a batch
the way that library is fastest at it:

* clustermgr: ``execute_batch`` (commands grouped per node, one write and
  one future per node; redirects retried per command);
* redis-py: its (cluster) pipeline, ``transaction=False``;
* coredis: its (cluster) pipeline, ``transaction=False``;
* aioredis-cluster: ``asyncio.gather`` (its cluster client has no pipeline;
  node pools multiplex commands on shared connections).

Client libraries are imported lazily so that this module loads in any
virtualenv; :func:`available` tells which ones import.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from typing import Any, ClassVar

from .jobs import Target, TargetKind

__all__ = ["ADAPTERS", "Adapter", "adapter_name", "available", "make_adapter"]

Items = Sequence[tuple[bytes, bytes]]

SENTINEL_CONNECTIONS = 1000
"""redis-py's sentinel pool cannot wait for a free connection: enough for a gather of 1,000."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


class Adapter(ABC):
    """The operations every scenario needs, for one client library."""

    name: ClassVar[str]
    module: ClassVar[str]
    """Import name whose presence means the client is installed."""
    distribution: ClassVar[str]
    supports: ClassVar[frozenset[TargetKind]] = frozenset({"cluster", "single", "sentinel"})
    isolated: ClassVar[bool] = False
    """True if the client must run in its own virtualenv."""

    def __init__(self, maxsize: int = 10, options: dict[str, Any] | None = None) -> None:
        self.maxsize = maxsize
        self.options = dict(options or {})
        self.target: Target | None = None
        self.sentinel: Any = None
        """The library's sentinel client, for ``sentinel`` targets that have one."""

    @classmethod
    def unsupported(cls, kind: TargetKind) -> str | None:
        """Why this client cannot run on a ``kind`` target, or ``None`` if it can."""
        return None if kind in cls.supports else f"{cls.name} has no {kind} client"

    @abstractmethod
    async def connect(self, target: Target) -> None:
        """Open the client (and at least one connection) to ``target``."""

    @abstractmethod
    def set(self, key: bytes, value: bytes) -> Awaitable[Any]:
        """``SET key value``."""

    @abstractmethod
    def get(self, key: bytes) -> Awaitable[Any]:
        """``GET key``."""

    @abstractmethod
    async def set_batch(self, items: Items) -> None:
        """Write every ``(key, value)`` pair, the client's fastest idiomatic way."""

    @abstractmethod
    async def close(self) -> None:
        """Close the client and wait until its connections are closed."""

    def settings(self) -> dict[str, Any]:
        """Pool limits and parser in use, for the report."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Name, version and settings, for the JSON output."""
        return {"client": self.name, "version": _version(self.distribution), **self.settings()}


class ClustermgrAdapter(Adapter):
    """clustermgr: ``create_cluster_pool`` / ``create_pool`` / ``create_sentinel_pool``.

    Batches: ``execute_batch`` on the pool; a pool without it (the sentinel
    pool) lends a connection to its master, whose ``execute_batch`` is used.
    The same adapter measures an older clustermgr tree (``clustermgr@REV``,
    see :mod:`benchmarks.baseline`): :meth:`settings` names the package
    actually imported.
    """

    name = "clustermgr"
    module = "clustermgr"
    distribution = "clustermgr"

    async def connect(self, target: Target) -> None:
        import clustermgr

        self.target = target
        if target.kind == "cluster":
            from clustermgr.cluster import create_cluster_pool

            self.pool: Any = await create_cluster_pool(
                list(target.nodes), minsize=1, maxsize=self.maxsize
            )
        elif target.kind == "sentinel":
            from clustermgr.sentinel import create_sentinel_pool

            self.pool = await create_sentinel_pool(
                list(target.nodes), target.service, minsize=1, maxsize=self.maxsize
            )
        else:
            self.pool = await clustermgr.create_pool(
                target.address, minsize=1, maxsize=self.maxsize
            )
        self._execute = self.pool.execute
        self._pool_batch = getattr(self.pool, "execute_batch", None)

    def set(self, key: bytes, value: bytes) -> Awaitable[Any]:
        return self._execute(b"SET", key, value)  # type: ignore[no-any-return]

    def get(self, key: bytes) -> Awaitable[Any]:
        return self._execute(b"GET", key)  # type: ignore[no-any-return]

    async def set_batch(self, items: Items) -> None:
        commands = [(b"SET", k, v) for k, v in items]
        if self._pool_batch is not None:
            replies = await self._pool_batch(commands)
        else:
            conn = await self.pool.acquire()
            try:
                replies = await conn.execute_batch(commands)
            finally:
                self.pool.release(conn)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply

    async def close(self) -> None:
        self.pool.close()
        await self.pool.wait_closed()

    def settings(self) -> dict[str, Any]:
        import os

        import clustermgr

        batch = ("execute_batch" if self._pool_batch is not None
                 else "acquire() + connection.execute_batch")
        return {"maxsize_per_node": self.maxsize, "parser": "hiredis", "batch": batch,
                "package": os.path.dirname(clustermgr.__file__ or "?")}


class ClustermgrDirectAdapter(ClustermgrAdapter):
    """clustermgr's plain ``create_pool`` on the sentinel group's master, found once.

    Beside ``clustermgr`` on the ``sentinel-*`` scenarios it shows what
    ``SentinelPool`` costs over the ``ConnectionsPool`` it routes to.
    """

    name = "clustermgr-direct"
    supports = frozenset({"sentinel"})

    async def connect(self, target: Target) -> None:
        import clustermgr
        from clustermgr.sentinel import create_sentinel_pool

        finder = await create_sentinel_pool(list(target.nodes), target.service, minsize=1,
                                            maxsize=1)
        address = finder.address
        finder.close()
        await finder.wait_closed()
        self.target = target
        self.pool = await clustermgr.create_pool(address, minsize=1, maxsize=self.maxsize)
        self._execute = self.pool.execute
        self._pool_batch = self.pool.execute_batch


class RedisPyAdapter(Adapter):
    """redis-py asyncio: ``RedisCluster`` / ``Redis``, pipelines for batches.

    Left at the library's default pool limits: its cluster client does not
    wait for a free connection but raises ``MaxConnectionsError`` past
    ``max_connections`` (default 100 per node), so a cap of ``maxsize`` would
    turn most of a 200-task run into errors; they are counted.  The
    single-node ``Redis`` default pool (100 connections) raises the same way,
    failing every op of the tasks past the 100th, so by default the single
    node uses ``BlockingConnectionPool(max_connections=maxsize)``, which waits
    like the other clients do (option ``redis_py_pool="default"`` restores the
    library default).  Sentinel: ``Sentinel(...).master_for(service)``; its
    pool raises past 100 connections too and has no blocking variant, so it
    gets :data:`SENTINEL_CONNECTIONS` (one per task of the largest gather;
    ``redis_py_pool="default"``: the library's 100).
    """

    name = "redis-py"
    module = "redis"
    distribution = "redis"

    async def connect(self, target: Target) -> None:
        self.target = target
        if target.kind == "cluster":
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            self.client: Any = RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
                decode_responses=False,
            )
            await self.client.initialize()
        elif target.kind == "sentinel":
            from redis.asyncio.sentinel import Sentinel

            # Each new master connection asks a sentinel where the master is: the
            # sentinels' pools need the same headroom as the master's.
            limit = {"max_connections": SENTINEL_CONNECTIONS} if self._blocking else {}
            self.sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.nodes), sentinel_kwargs=limit or None)
            self.client = self.sentinel.master_for(target.service, **limit)
            await self.client.ping()
        else:
            from redis.asyncio import BlockingConnectionPool, Redis

            host, port = target.address
            if self._blocking:
                pool = BlockingConnectionPool(host=host, port=port, max_connections=self.maxsize)
                self.client = Redis.from_pool(pool)  # owns the pool: aclose() closes it
            else:
                self.client = Redis(host=host, port=port)
            await self.client.ping()

    def set(self, key: bytes, value: bytes) -> Awaitable[Any]:
        return self.client.set(key, value)  # type: ignore[no-any-return]

    def get(self, key: bytes) -> Awaitable[Any]:
        return self.client.get(key)  # type: ignore[no-any-return]

    async def set_batch(self, items: Items) -> None:
        pipe = self.client.pipeline(transaction=False)
        for k, v in items:
            pipe.set(k, v)
        await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()
        if self.sentinel is not None:
            for node in self.sentinel.sentinels:
                await node.aclose()

    def settings(self) -> dict[str, Any]:
        from redis.utils import HIREDIS_AVAILABLE

        if self._is_cluster:
            limit = "100 per node (library default; raises MaxConnectionsError past it)"
        elif self.target is not None and self.target.kind == "sentinel":
            limit = (f"{SENTINEL_CONNECTIONS} (master and sentinel pools)" if self._blocking
                     else "100 (library default; raises MaxConnectionsError past it)")
        elif self._blocking:
            limit = f"BlockingConnectionPool({self.maxsize})"
        else:
            limit = "100 (library default; raises MaxConnectionsError past it)"
        return {
            "max_connections": limit,
            "parser": "hiredis" if HIREDIS_AVAILABLE else "python",
            "batch": "pipeline(transaction=False)",
        }

    @property
    def _blocking(self) -> bool:
        return bool(self.options.get("redis_py_pool", "blocking") == "blocking")

    @property
    def _is_cluster(self) -> bool:
        return self.target is not None and self.target.kind == "cluster"


class CoredisAdapter(Adapter):
    """coredis: ``RedisCluster`` / ``Redis`` / ``Sentinel(...).primary_for(service)``.

    Clients are async context managers since coredis 6.0.
    """

    name = "coredis"
    module = "coredis"
    distribution = "coredis"

    @classmethod
    def unsupported(cls, kind: TargetKind) -> str | None:
        """coredis gained ``Sentinel`` at the top level late: skip older versions."""
        if kind == "sentinel":
            import coredis

            if not hasattr(coredis, "Sentinel"):
                return f"coredis {_version('coredis')} has no coredis.Sentinel"
        return super().unsupported(kind)

    async def connect(self, target: Target) -> None:
        import coredis

        self.target = target
        if target.kind == "cluster":
            self.client: Any = coredis.RedisCluster(
                startup_nodes=[{"host": h, "port": p} for h, p in target.nodes],
                max_connections=self.maxsize,
                max_connections_per_node=True,
            )
        elif target.kind == "sentinel":
            self.sentinel = coredis.Sentinel(list(target.nodes))
            await self.sentinel.__aenter__()
            self.client = self.sentinel.primary_for(target.service)
        else:
            self.client = coredis.Redis(host=target.address[0], port=target.address[1])
        # coredis >= 6 runs its pools in an anyio task group entered here;
        # close() exits it from the same task.
        await self.client.__aenter__()

    def set(self, key: bytes, value: bytes) -> Awaitable[Any]:
        return self.client.set(key, value)  # type: ignore[no-any-return]

    def get(self, key: bytes) -> Awaitable[Any]:
        return self.client.get(key)  # type: ignore[no-any-return]

    async def set_batch(self, items: Items) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for k, v in items:
                pipe.set(k, v)

    async def close(self) -> None:
        await self.client.__aexit__(None, None, None)
        if self.sentinel is not None:
            await self.sentinel.__aexit__(None, None, None)

    def settings(self) -> dict[str, Any]:
        cluster = self.target is not None and self.target.kind == "cluster"
        return {
            "max_connections": f"{self.maxsize} per node" if cluster else "library default",
            "parser": "coredis (C speedups)",
            "batch": "pipeline(transaction=False)",
        }


class AioredisClusterAdapter(Adapter):
    """aioredis-cluster (aioredis 1.x API, vendored); runs in its own virtualenv."""

    name = "aioredis-cluster"
    module = "aioredis_cluster"
    distribution = "aioredis-cluster"
    supports = frozenset({"cluster"})
    isolated = True

    async def connect(self, target: Target) -> None:
        from aioredis_cluster import create_redis_cluster  # type: ignore[import-not-found]

        self.target = target
        self.client: Any = await create_redis_cluster(
            list(target.nodes), pool_minsize=1, pool_maxsize=self.maxsize
        )

    def set(self, key: bytes, value: bytes) -> Awaitable[Any]:
        return self.client.set(key, value)  # type: ignore[no-any-return]

    def get(self, key: bytes) -> Awaitable[Any]:
        return self.client.get(key)  # type: ignore[no-any-return]

    async def set_batch(self, items: Items) -> None:
        client = self.client
        await asyncio.gather(*[client.set(k, v) for k, v in items])

    async def close(self) -> None:
        self.client.close()
        await self.client.wait_closed()

    def settings(self) -> dict[str, Any]:
        return {
            "pool_maxsize": f"{self.maxsize} per node",
            "hiredis": _version("hiredis"),
            "batch": "gather (no cluster pipeline)",
        }


ADAPTERS: dict[str, type[Adapter]] = {
    cls.name: cls
    for cls in (ClustermgrAdapter, ClustermgrDirectAdapter, RedisPyAdapter, CoredisAdapter,
                AioredisClusterAdapter)
}


def available(name: str) -> bool:
    """True if client ``name`` imports in this interpreter."""
    try:
        importlib.import_module(ADAPTERS[name].module)
    except ImportError:
        return False
    return True


def adapter_name(client: str) -> str:
    """The adapter a client name runs: ``clustermgr@REV`` runs ``clustermgr``."""
    return client.partition("@")[0]


def make_adapter(name: str, maxsize: int, options: dict[str, Any] | None = None) -> Adapter:
    """A fresh, unconnected adapter for client ``name`` (``clustermgr@REV`` allowed)."""
    try:
        cls = ADAPTERS[adapter_name(name)]
    except KeyError:
        raise ValueError(f"unknown client {name!r}; known: {', '.join(ADAPTERS)}") from None
    return cls(maxsize, options)
