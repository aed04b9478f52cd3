"""clustermgr: asyncio connections to Redis, Redis Cluster and Sentinel-managed Redis.

Every manager implements the aioredis 1.x interfaces of :mod:`clustermgr.abc`,
so code written against ``AbcPool``/``AbcConnection`` runs unchanged on one
server, a cluster or a sentinel group.
"""

from __future__ import annotations

from . import errors
from .abc import AbcChannel, AbcConnection, AbcPool, register_with_aioredis
from .address import ServerAddress, parse_address
from .connection import RedisConnection, create_connection
from .pool import ConnectionsPool, create_pool
from .pubsub import Channel, Receiver

__all__ = [
    "AbcChannel",
    "AbcConnection",
    "AbcPool",
    "Channel",
    "ConnectionsPool",
    "Receiver",
    "RedisConnection",
    "ServerAddress",
    "create_connection",
    "create_pool",
    "errors",
    "parse_address",
    "register_with_aioredis",
]

__version__ = "0.1.0"
