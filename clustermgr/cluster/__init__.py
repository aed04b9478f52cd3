"""Redis Cluster support: route by key slot, follow the cluster as it changes.

:func:`create_cluster_pool` returns a :class:`ClusterPool`, an
:class:`~clustermgr.abc.AbcPool` that any code written for one server (aioredis
1.x ``Redis`` included) can use unchanged.
"""

from __future__ import annotations

from ..commands import CommandInfo, CommandTable
from ..errors import AskTargetUnreachableError, ClusterRetryError, OutcomeUnknownError
from ..slots import SLOT_COUNT, key_slot
from .pool import READ_FROM, ClusterPool, create_cluster_pool
from .refresh import RefreshOptions
from .topology import NodeInfo, Shard, SlotMap

__all__ = [
    "READ_FROM",
    "SLOT_COUNT",
    "AskTargetUnreachableError",
    "ClusterPool",
    "ClusterRetryError",
    "CommandInfo",
    "CommandTable",
    "NodeInfo",
    "OutcomeUnknownError",
    "RefreshOptions",
    "Shard",
    "SlotMap",
    "create_cluster_pool",
    "key_slot",
]
