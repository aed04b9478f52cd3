"""Pub/sub through a SentinelPool: the caller's channels follow the server.

The pool keeps the subscriptions as *desired state* (the caller's Channel
objects). The server pool in use is subscribed with a relay per channel that
forwards messages; when the server is replaced (failover, a replica dropped),
its pool is closed, which closes only the relays, and fresh relays are
subscribed on the new server: the same Channel objects keep delivering.
Messages published while a subscription moves may be missed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..abc import AbcChannel
from ..errors import PoolClosedError, RedisError, ReplyError
from ..pool import ConnectionsPool
from ..pubsub import SUBSCRIBE_COMMANDS, PubSubRequest, is_pubsub_command
from ..subscriptions import Relay, SubscriptionSet
from ._common import Tasks, address_text, logger

__all__ = ["SentinelPubSub", "is_pubsub_command"]


class SentinelPubSub:
    """Subscriptions of one SentinelPool, moved to each new server.

    ``active()`` is the server pool to subscribe on now (``None`` while the
    pool holds commands) and ``wait_active()`` waits for one. Each server pool
    is subscribed with :class:`~clustermgr.subscriptions.Relay` objects: when it
    is replaced and closed, only the relays end, not the caller's channels.
    """

    def __init__(
        self,
        service: str,
        *,
        active: Callable[[], ConnectionsPool | None],
        wait_active: Callable[[], Awaitable[ConnectionsPool]],
        tasks: Tasks,
    ) -> None:
        self._service = service
        self._active = active
        self._wait_active = wait_active
        self._tasks = tasks
        self._closed = False
        self._set = SubscriptionSet()

    def execute(self, command: bytes | str, *channels: Any) -> Awaitable[Any]:
        """(Un)subscribe: update the desired state, then the server in use."""
        if self._closed:
            raise PoolClosedError(f"sentinel pool for {self._service!r} is closed")
        request = self._set.parse(command, channels)
        targets: list[Any]
        if request.subscribing:
            self._set.add(request.registry, request.channels)
            targets = [Relay(channel) for channel in request.channels]
        else:
            targets = list(request.names)
            for gone in self._set.remove(request.registry, request.names):
                gone.close()
        name = request.command
        pool = self._active()
        if pool is not None:
            result: Any = ConnectionsPool.execute_pubsub(pool, name, *targets)
        else:
            result = self._tasks.spawn(self._later(name, targets))
        if request.subscribing:
            result.add_done_callback(functools.partial(self._settled, request))
        return result  # type: ignore[no-any-return]

    def _settled(self, request: PubSubRequest, result: asyncio.Future[Any]) -> None:
        """A refused SUBSCRIBE (NOPERM, ...) drops what it asked for."""
        exc = None if result.cancelled() else result.exception()
        if isinstance(exc, ReplyError):
            for channel in request.channels:
                if self._set.discard(request.registry, channel):
                    channel.close(exc)

    async def _later(self, command: bytes, targets: list[Any]) -> Any:
        try:
            pool = await self._wait_active()
            return await ConnectionsPool.execute_pubsub(pool, command, *targets)
        except asyncio.CancelledError:
            if self._closed:  # the sentinel pool cancels its tasks on close
                raise PoolClosedError(f"sentinel pool for {self._service!r} was closed") from None
            raise

    def move_to(self, pool: ConnectionsPool) -> None:
        """Subscribe every desired channel on ``pool`` (the new server)."""
        for kind in SUBSCRIBE_COMMANDS:
            channels = list(self._set.view(kind).values())
            if channels:
                relays = [Relay(channel) for channel in channels]
                self._tasks.spawn(self._subscribe(pool, SUBSCRIBE_COMMANDS[kind], relays))

    async def _subscribe(self, pool: ConnectionsPool, command: bytes, relays: list[Any]) -> None:
        try:
            await ConnectionsPool.execute_pubsub(pool, command, *relays)
        except (RedisError, OSError) as exc:
            if not pool.closed:
                logger.warning("could not move %d subscriptions to %s: %s",
                               len(relays), address_text(pool.address), exc)
            return
        logger.info("moved %d subscriptions of %r to %s", len(relays), self._service,
                    address_text(pool.address))

    def close(self) -> None:
        """Close every channel (the pool is closing)."""
        self._closed = True
        self._set.close_all()

    @property
    def channels(self) -> Mapping[bytes, AbcChannel]:
        """Channels subscribed with SUBSCRIBE (str keys work too)."""
        return self._set.channels

    @property
    def patterns(self) -> Mapping[bytes, AbcChannel]:
        """Patterns subscribed with PSUBSCRIBE (str keys work too)."""
        return self._set.patterns

    @property
    def shard_channels(self) -> Mapping[bytes, AbcChannel]:
        """Channels subscribed with SSUBSCRIBE (str keys work too)."""
        return self._set.shard_channels

    @property
    def count(self) -> int:
        """Number of subscriptions."""
        return self._set.count
