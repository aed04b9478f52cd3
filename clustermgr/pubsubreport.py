"""How one pool reports its pub/sub connection lost and restored.

Each drop and each return is logged, counted, emitted on the pool's event bus
(:class:`~clustermgr.events.PubSubDisconnected`,
:class:`~clustermgr.events.PubSubResubscribed`) and passed to the pool's
``on_pubsub_lost`` / ``on_resubscribed`` hooks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from .events import EventBus, PubSubDisconnected, PubSubResubscribed
from .stats import Counters
from .subscriptions import SubscriptionSet

__all__ = ["PubSubReport"]

pubsub_logger = logging.getLogger("clustermgr.pubsub")


class PubSubOwner(Protocol):
    """What the report reads of its pool (all public)."""

    events: EventBus

    @property
    def address(self) -> Any: ...

    @property
    def in_pubsub(self) -> int: ...

    @property
    def on_pubsub_lost(self) -> Callable[[Any, BaseException | None], None] | None: ...

    @property
    def on_resubscribed(self) -> Callable[[Any, float], None] | None: ...


class PubSubReport:
    """The ``on_lost``/``on_restored`` callbacks of one pool's :class:`PubSubLink`."""

    def __init__(
        self, owner: PubSubOwner, *, counters: Counters, describe: str,
        subscriptions: Callable[[], SubscriptionSet],
    ) -> None:
        self._owner = owner
        self._counters = counters
        self._describe = describe
        self._subscriptions = subscriptions

    def lost(self, cause: BaseException | None) -> None:
        """The pub/sub connection of established subscriptions dropped."""
        owner = self._owner
        reason = str(cause or "closed by the server")
        pubsub_logger.warning("pub/sub connection to %s lost (%s); resubscribing %d",
                              self._describe, reason, owner.in_pubsub)
        if owner.events.active:
            subs = self._subscriptions()
            owner.events.emit(PubSubDisconnected(
                owner.address, subs.names("channels"), subs.names("patterns"),
                subs.names("shard_channels"), reason=reason,
            ))
        hook = owner.on_pubsub_lost
        if hook is not None:
            hook(owner, cause)

    def restored(self, gap: float) -> None:
        """The pub/sub connection is back and resubscribed, ``gap`` seconds after the drop."""
        owner = self._owner
        pubsub_logger.info(
            "pub/sub connection to %s back after %.0f ms; %d subscriptions restored",
            self._describe, gap * 1000, owner.in_pubsub,
        )
        self._counters.reconnects += 1
        self._counters.resubscribes += owner.in_pubsub
        if owner.events.active:
            subs = self._subscriptions()
            owner.events.emit(PubSubResubscribed(
                owner.address, subs.names("channels"), subs.names("patterns"),
                subs.names("shard_channels"), lost_at=time.time() - gap, gap_ms=gap * 1000,
            ))
        hook = owner.on_resubscribed
        if hook is not None:
            hook(owner, gap)
