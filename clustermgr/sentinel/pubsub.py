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
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import PoolClosedError, RedisError, ReplyError
from ..pool import ConnectionsPool
from ..pubsub import SUBSCRIBE_COMMANDS, PubSubRequest, is_pubsub_command
from ..subscriptions import Relay, SubscriptionSet, confirmations
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
        """(Un)subscribe: update the desired state, then the server in use.

        A SUBSCRIBE whose server is replaced before it confirmed (the master
        died) follows the failover: it resolves once the new server confirmed
        it (``wait_active`` bounds the wait by ``failover_timeout``).
        """
        if self._closed:
            raise PoolClosedError(f"sentinel pool for {self._service!r} is closed")
        request = self._set.parse(command, channels)
        pool = self._active()
        if not request.subscribing:
            for gone in self._set.remove(request.registry, request.names):
                gone.close()
            if pool is not None:
                return ConnectionsPool.execute_pubsub(pool, request.command, *request.names)
            return self._tasks.spawn(self._later(request))
        self._set.add(request.registry, request.channels)
        if pool is None:
            return self._tasks.spawn(self._later(request))
        inner: Any = ConnectionsPool.execute_pubsub(pool, request.command, *self._relays(request))
        outer = asyncio.get_running_loop().create_future()
        inner.add_done_callback(functools.partial(self._settled, request, outer))
        return outer

    def _relays(self, request: PubSubRequest) -> list[Any]:
        """A relay per desired channel of ``request``: a name given twice is one relay."""
        if not request.subscribing:
            return list(request.names)
        relays: dict[int, Relay] = {}
        kind = request.registry
        for channel in request.channels:
            if self._set.get(kind, channel.name) is channel and id(channel) not in relays:
                relays[id(channel)] = Relay(channel)
        return [relays[id(c)] for c in request.channels if id(c) in relays]

    def _settled(
        self, request: PubSubRequest, outer: asyncio.Future[Any], inner: asyncio.Future[Any]
    ) -> None:
        exc = None if inner.cancelled() else inner.exception()
        if isinstance(exc, PoolClosedError) and not self._closed:
            # The server was replaced before it confirmed: follow the failover.
            task = self._tasks.spawn(self._later(request))
            task.add_done_callback(functools.partial(_copy, outer))
            return
        self._refused(request, exc)
        _copy(outer, inner)

    def _refused(self, request: PubSubRequest, exc: BaseException | None) -> None:
        """A refused SUBSCRIBE (NOPERM, ...) drops what it asked for."""
        if isinstance(exc, ReplyError):
            for channel in request.channels:
                if self._set.discard(request.registry, channel):
                    channel.close(exc)

    async def _later(self, request: PubSubRequest) -> Any:
        """Run ``request`` on the server in use once there is one (and again if replaced)."""
        try:
            while True:
                pool = await self._wait_active()
                targets = self._relays(request)
                if request.subscribing and not targets:  # unsubscribed meanwhile
                    return confirmations(request.command, request.names, self._set.count)
                try:
                    return await ConnectionsPool.execute_pubsub(pool, request.command, *targets)
                except PoolClosedError:
                    if self._closed:
                        raise
                except ReplyError as exc:
                    if request.subscribing:
                        self._refused(request, exc)
                    raise
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
    def subscriptions(self) -> SubscriptionSet:
        """The desired subscriptions (str keys work in its views)."""
        return self._set


def _copy(outer: asyncio.Future[Any], source: asyncio.Future[Any]) -> None:
    """Resolve ``outer`` as ``source`` ended, unless its caller gave up already."""
    if source.cancelled():
        if not outer.done():
            outer.cancel()
        return
    exc = source.exception()
    if outer.done():
        return
    if exc is not None:
        outer.set_exception(exc)
    else:
        outer.set_result(source.result())
