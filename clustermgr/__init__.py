"""clustermgr: asyncio connections to Redis, Redis Cluster and Sentinel-managed Redis.

Every manager implements the aioredis 1.x interfaces of :mod:`clustermgr.abc`,
so code written against ``AbcPool``/``AbcConnection`` runs unchanged on one
server, a cluster or a sentinel group.
"""

from __future__ import annotations

from . import errors
from .abc import AbcChannel, AbcConnection, AbcPool
from .address import ServerAddress, parse_address
from .aioredis_compat import register_with_aioredis
from .cluster import ClusterPool, create_cluster_pool
from .connection import RedisConnection, create_connection
from .pool import ConnectionsPool, create_pool
from .pubsub import Channel, Receiver
from .sentinel import RedisSentinel, SentinelPool, create_sentinel, create_sentinel_pool

__all__ = [
    "AbcChannel",
    "AbcConnection",
    "AbcPool",
    "Channel",
    "ClusterPool",
    "ConnectionsPool",
    "Receiver",
    "RedisConnection",
    "RedisSentinel",
    "SentinelPool",
    "ServerAddress",
    "create_cluster_pool",
    "create_connection",
    "create_pool",
    "create_sentinel",
    "create_sentinel_pool",
    "errors",
    "parse_address",
    "register_with_aioredis",
]

__version__ = "0.1.0"
