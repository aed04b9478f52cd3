"""The narrow interface the failover Follower and the Servers get to their SentinelPool.

They decide which server commands go to; the pool carries that out. Instead
of the pool itself they receive these callables, so neither reads the
pool's state and neither module imports the pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..events import EventBus
from ..pool import ConnectionsPool

__all__ = ["PoolHooks"]

P = TypeVar("P", bound=ConnectionsPool)


@dataclass(frozen=True)
class PoolHooks(Generic[P]):
    """What the Follower and Servers may do to the pool they serve."""

    events: EventBus
    """The pool's event bus (FailoverDetected, NodeDown, ...)."""
    set_route: Callable[[P | None, tuple[P, ...]], None]
    """Publish the route: the server pool to use (None: hold) and the replica rotation."""
    move_pubsub: Callable[[P], None]
    """Move every subscription to this server pool."""
    adopt: Callable[[P], None]
    """Share the pool's events and latency settings with a new server pool."""
    forget: Callable[[P], None]
    """A server pool was closed for good: drop what the pool keeps for it."""
    execute_pubsub: Callable[..., Awaitable[Any]]
    """(Un)subscribe through the pool (server pools delegate their pub/sub here)."""
