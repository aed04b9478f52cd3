"""Listening to every sentinel's events, one reconnecting subscription each.

Only the leading sentinel publishes the early stages of a failover, so a
:class:`SentinelMonitor` subscribes to *all* channels (``PSUBSCRIBE *``) of
*every* known sentinel. Each subscription is a
:class:`~clustermgr.subscriptions.PubSubLink` (the same state machine the
pools use): a connection that drops is reopened with backoff and the pattern
resubscribed (forever, until closed); the owner hears about each event and
about each sentinel going away or coming back.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from ..connection import RedisConnection
from ..errors import ProtocolError, RedisError
from ..pubsub import Channel
from ..subscriptions import PubSubLink
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
        self._links: dict[Address, PubSubLink] = {}
        self._tasks: dict[Address, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._up: set[Address] = set()
        self._closing = False

    def watch(self, address: Address) -> bool:
        """Start listening to the sentinel at ``address``; False if already watched."""
        if self._closing or address in self._tasks:
            return False
        link = self._links[address] = PubSubLink(
            connect=functools.partial(self._connect, address), spawn=self._spawn,
            describe=f"sentinel {address_text(address)}", reconnect_delay=self._reconnect_delay,
            on_lost=functools.partial(self._lost, address),
            on_restored=lambda _gap: self._set_state(address, True),
        )
        self._tasks[address] = asyncio.ensure_future(self._run(address, link))
        return True

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    @property
    def watched(self) -> list[Address]:
        """Sentinels being listened to (connected or reconnecting)."""
        return list(self._tasks)

    @property
    def connected(self) -> list[Address]:
        """Sentinels whose event subscription is established now."""
        return list(self._up)

    async def _run(self, address: Address, link: PubSubLink) -> None:
        """Subscribe once (the link keeps it), then read events until the channel ends."""
        channel = Channel(b"*", is_pattern=True)
        try:
            await link.execute(b"PSUBSCRIBE", (channel,))
        except (RedisError, OSError) as exc:
            if not self._closing:
                logger.warning("sentinel %s refused the event subscription: %s",
                               address_text(address), exc)
            return
        self._set_state(address, True)
        try:
            async for kind, payload in channel.iter():
                try:
                    event = parse_event(kind, payload, address)
                except ProtocolError as exc:  # one bad event: dropped, the listening goes on
                    logger.warning("sentinel %s sent a malformed event; dropped: %s",
                                   address_text(address), exc)
                    continue
                self._dispatch(event)
        finally:
            self._set_state(address, False)

    def _lost(self, address: Address, cause: BaseException | None) -> None:
        logger.warning("lost event subscription to sentinel %s: %s", address_text(address),
                       cause or "connection closed")
        self._set_state(address, False)
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
        for link in self._links.values():
            link.close()  # ends each channel, so each reader task ends
        for task in self._tasks.values():
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until every subscription task and connection has ended."""
        await asyncio.gather(
            *self._tasks.values(), *(link.wait_closed() for link in self._links.values()),
            *self._background, return_exceptions=True,
        )
