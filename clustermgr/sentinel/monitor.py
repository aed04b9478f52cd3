"""Listening to every sentinel's events, one reconnecting subscription each.

Only the leading sentinel publishes the early stages of a failover, so a
:class:`SentinelMonitor` subscribes to *all* channels (``PSUBSCRIBE *``) of
*every* known sentinel. A subscription that drops is reopened with backoff
(forever, until closed); the owner hears about each event and about each
sentinel going away or coming back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..backoff import Backoff
from ..connection import RedisConnection
from ..errors import ChannelClosedError, RedisError
from ..pubsub import Channel
from ._common import Address, address_text, logger
from .events import SentinelEvent, parse_event

__all__ = ["SentinelMonitor"]


EventHandler = Callable[[SentinelEvent], None]
StateHandler = Callable[[Address, bool], None]


class SentinelMonitor:
    """Event subscriptions to a changing set of sentinels.

    ``on_event(event)`` is called for every message (the same event arrives
    once per sentinel: handlers must be idempotent); ``on_state(address, up)``
    when a subscription is established (``up=True``) or lost. ``connect(address)``
    opens a connection to one sentinel, with that sentinel's TLS and credentials.
    """

    def __init__(
        self,
        *,
        connect: Callable[[Address], Awaitable[RedisConnection]],
        on_event: EventHandler,
        on_state: StateHandler | None = None,
        reconnect_delay: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        self._connect = connect
        self._on_event = on_event
        self._on_state = on_state
        self._reconnect_delay = reconnect_delay
        self._tasks: dict[Address, asyncio.Task[None]] = {}
        self._up: set[Address] = set()
        self._closing = False

    def watch(self, address: Address) -> bool:
        """Start listening to the sentinel at ``address``; False if already watched."""
        if self._closing or address in self._tasks:
            return False
        self._tasks[address] = asyncio.ensure_future(self._run(address))
        return True

    @property
    def watched(self) -> list[Address]:
        """Sentinels being listened to (connected or reconnecting)."""
        return list(self._tasks)

    @property
    def connected(self) -> list[Address]:
        """Sentinels whose event subscription is established now."""
        return list(self._up)

    async def _run(self, address: Address) -> None:
        delay, max_delay = self._reconnect_delay
        backoff = Backoff(base=delay, cap=max(delay, max_delay))
        attempt = 0
        text = address_text(address)
        while not self._closing:
            try:
                conn = await self._connect(address)
            except (RedisError, OSError) as exc:
                attempt += 1
                if attempt == 1:
                    logger.warning("sentinel %s unreachable for events: %s", text, exc)
                await backoff.sleep(attempt)
                continue
            channel = Channel(b"*", is_pattern=True)
            try:
                await conn.execute_pubsub(b"PSUBSCRIBE", channel)
                attempt = 0
                self._set_state(address, True)
                while True:
                    kind, payload = await channel.get()
                    self._dispatch(parse_event(kind, payload, address))
            except ChannelClosedError:
                if not self._closing:
                    logger.warning("lost event subscription to sentinel %s: connection closed",
                                   text)
            except (RedisError, OSError) as exc:
                if not self._closing:
                    logger.warning("lost event subscription to sentinel %s: %s", text, exc)
            finally:
                conn.close()
                await conn.wait_closed()
                self._set_state(address, False)
            if not self._closing:
                await backoff.sleep(0)

    def _set_state(self, address: Address, up: bool) -> None:
        if up == (address in self._up):
            return
        if up:
            self._up.add(address)
        else:
            self._up.discard(address)
        if self._on_state is not None and not self._closing:
            self._on_state(address, up)

    def _dispatch(self, event: SentinelEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # a handler bug must not kill the subscription
            logger.exception("error handling sentinel event %s %s", event.kind, event.payload)

    def close(self) -> None:
        """Stop every subscription."""
        self._closing = True
        for task in self._tasks.values():
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until every subscription task has ended."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
