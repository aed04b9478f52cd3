"""Pub/sub through a SentinelPool: the caller's channels follow the server.

The pool keeps the subscriptions as *desired state* (the caller's Channel
objects). The server pool in use is subscribed with a relay per channel that
forwards messages; when the server is replaced (failover, a replica dropped),
its pool is closed, which closes only the relays, and fresh relays are
subscribed on the new server: the same Channel objects keep delivering.
Messages published while a subscription moves may be missed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from ..abc import AbcChannel
from ..errors import PoolClosedError, RedisError
from ..pool import ConnectionsPool
from ..pubsub import SUBSCRIBE_COMMANDS, is_pubsub_command, parse_pubsub
from ._common import Tasks, address_text, logger

__all__ = ["SentinelPubSub", "is_pubsub_command"]


class _Relay(AbcChannel):
    """Stands for a caller's channel inside one server pool.

    Closing it (the server pool closes its channels when it is replaced) does
    not close the caller's channel: that one moves on to the next server.
    """

    __slots__ = ("_target",)

    def __init__(self, target: AbcChannel) -> None:
        self._target = target

    @property
    def name(self) -> bytes:
        return self._target.name

    @property
    def is_pattern(self) -> bool:
        return self._target.is_pattern

    @property
    def is_active(self) -> bool:
        return self._target.is_active

    def put_nowait(self, data: Any) -> None:
        self._target.put_nowait(data)

    def close(self, exc: BaseException | None = None) -> None:
        """No-op: the SentinelPool decides when the caller's channel ends."""


class SentinelPubSub:
    """Subscriptions of one SentinelPool, moved to each new server.

    ``active()`` is the server pool to subscribe on now (``None`` while the
    pool holds commands) and ``wait_active()`` waits for one.
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
        self._subscriptions: dict[str, dict[bytes, AbcChannel]] = {
            registry: {} for registry in SUBSCRIBE_COMMANDS
        }

    def execute(self, command: bytes | str, *channels: Any) -> Awaitable[Any]:
        """(Un)subscribe: update the desired state, then the server in use."""
        if self._closed:
            raise PoolClosedError(f"sentinel pool for {self._service!r} is closed")
        request = parse_pubsub(command, channels, self._subscriptions)
        registry = self._subscriptions[request.registry]
        targets: list[Any]
        if request.subscribing:
            for channel in request.channels:
                registry[channel.name] = channel
            targets = [_Relay(channel) for channel in request.channels]
        else:
            targets = list(request.names)
            for key in targets or list(registry):
                gone = registry.pop(key, None)
                if gone is not None:
                    gone.close()
        name = request.command
        pool = self._active()
        if pool is not None:
            return ConnectionsPool.execute_pubsub(pool, name, *targets)
        return self._tasks.spawn(self._later(name, targets))

    async def _later(self, command: bytes, targets: list[Any]) -> Any:
        pool = await self._wait_active()
        return await ConnectionsPool.execute_pubsub(pool, command, *targets)

    def move_to(self, pool: ConnectionsPool) -> None:
        """Subscribe every desired channel on ``pool`` (the new server)."""
        for registry_name, registry in self._subscriptions.items():
            if registry:
                relays = [_Relay(channel) for channel in registry.values()]
                self._tasks.spawn(self._subscribe(pool, SUBSCRIBE_COMMANDS[registry_name], relays))

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
        for registry in self._subscriptions.values():
            for channel in registry.values():
                channel.close()
            registry.clear()

    @property
    def channels(self) -> Mapping[bytes, AbcChannel]:
        """Channels subscribed with SUBSCRIBE."""
        return MappingProxyType(self._subscriptions["channels"])

    @property
    def patterns(self) -> Mapping[bytes, AbcChannel]:
        """Patterns subscribed with PSUBSCRIBE."""
        return MappingProxyType(self._subscriptions["patterns"])

    @property
    def count(self) -> int:
        """Number of subscriptions."""
        return sum(len(r) for r in self._subscriptions.values())
