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

__all__ = ["ADAPTERS", "Adapter", "available", "make_adapter"]

Items = Sequence[tuple[bytes, bytes]]


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
    supports: ClassVar[frozenset[TargetKind]] = frozenset({"cluster", "single"})
    isolated: ClassVar[bool] = False
    """True if the client must run in its own virtualenv."""

    def __init__(self, maxsize: int = 10, options: dict[str, Any] | None = None) -> None:
        self.maxsize = maxsize
        self.options = dict(options or {})
        self.target: Target | None = None

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
    """clustermgr: ``create_cluster_pool`` / ``create_pool`` and ``execute``."""

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
        else:
            self.pool = await clustermgr.create_pool(
                target.address, minsize=1, maxsize=self.maxsize
            )
        self._execute = self.pool.execute

    def set(self, key: bytes, value: bytes) -> Awaitable[Any]:
        return self._execute(b"SET", key, value)  # type: ignore[no-any-return]

    def get(self, key: bytes) -> Awaitable[Any]:
        return self._execute(b"GET", key)  # type: ignore[no-any-return]

    async def set_batch(self, items: Items) -> None:
        replies = await self.pool.execute_batch([(b"SET", k, v) for k, v in items])
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply

    async def close(self) -> None:
        self.pool.close()
        await self.pool.wait_closed()

    def settings(self) -> dict[str, Any]:
        return {"maxsize_per_node": self.maxsize, "parser": "hiredis", "batch": "execute_batch"}


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
    library default).
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

    def settings(self) -> dict[str, Any]:
        from redis.utils import HIREDIS_AVAILABLE

        if self._is_cluster:
            limit = "100 per node (library default; raises MaxConnectionsError past it)"
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
    """coredis: ``RedisCluster`` / ``Redis`` (async context managers since 6.0)."""

    name = "coredis"
    module = "coredis"
    distribution = "coredis"

    async def connect(self, target: Target) -> None:
        import coredis

        self.target = target
        if target.kind == "cluster":
            self.client: Any = coredis.RedisCluster(
                startup_nodes=[{"host": h, "port": p} for h, p in target.nodes],
                max_connections=self.maxsize,
                max_connections_per_node=True,
            )
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
    for cls in (ClustermgrAdapter, RedisPyAdapter, CoredisAdapter, AioredisClusterAdapter)
}


def available(name: str) -> bool:
    """True if client ``name`` imports in this interpreter."""
    try:
        importlib.import_module(ADAPTERS[name].module)
    except ImportError:
        return False
    return True


def make_adapter(name: str, maxsize: int, options: dict[str, Any] | None = None) -> Adapter:
    """A fresh, unconnected adapter for client ``name``."""
    try:
        cls = ADAPTERS[name]
    except KeyError:
        raise ValueError(f"unknown client {name!r}; known: {', '.join(ADAPTERS)}") from None
    return cls(maxsize, options)
