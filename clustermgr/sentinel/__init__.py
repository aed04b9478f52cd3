"""Sentinel-managed Redis: a pool that follows failover, and a sentinel client.

* :func:`create_sentinel_pool` / :class:`SentinelPool`: an ``AbcPool`` for the
  master (or a replica) of a service that holds commands during a failover,
  fences the old master and moves subscriptions to the new one.
* :func:`create_sentinel` / :class:`RedisSentinel`: ``SENTINEL`` commands.
"""

from __future__ import annotations

from .errors import (
    FailoverTimeoutError,
    MasterDownError,
    NoHealthyReplicaError,
    RoleMismatchError,
    SentinelAuthError,
    SentinelsUnreachableError,
    UnknownServiceError,
)
from .events import SentinelEvent, parse_event
from .pool import SentinelPool, create_sentinel_pool
from .sentinel import RedisSentinel, create_sentinel

__all__ = [
    "FailoverTimeoutError",
    "MasterDownError",
    "NoHealthyReplicaError",
    "RedisSentinel",
    "RoleMismatchError",
    "SentinelAuthError",
    "SentinelEvent",
    "SentinelPool",
    "SentinelsUnreachableError",
    "UnknownServiceError",
    "create_sentinel",
    "create_sentinel_pool",
    "parse_event",
]
