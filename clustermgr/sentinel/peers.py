"""The sentinels one follower listens to: the known ones, and the peers it learns.

:class:`SentinelPeers` keeps an event subscription (:mod:`.monitor`) to every
sentinel of one service: those given at start, and the peers learnt from
``SENTINEL SENTINELS`` and ``+sentinel``. Events reach the owner with their
addresses remapped (``address_remap``); a subscription that comes back after a
loss is reported, since events may have been missed meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import RedisError
from ._common import Address, address_text, logger
from .events import SentinelEvent, remap_event
from .monitor import SentinelMonitor
from .sentinel import RedisSentinel

__all__ = ["SentinelPeers"]


class SentinelPeers:
    """Event subscriptions to every sentinel of ``service``.

    ``on_event(event)`` gets every event but ``+sentinel`` (handled here);
    ``on_reconnect(address)`` is called when the subscription to a sentinel
    heard from before is established again.
    """

    def __init__(
        self,
        sentinel: RedisSentinel,
        service: str,
        *,
        on_event: Callable[[SentinelEvent], None],
        on_reconnect: Callable[[Address], None],
    ) -> None:
        self._sentinel = sentinel
        self._service = service
        self._on_event = on_event
        self._on_reconnect = on_reconnect
        self._seen: set[Address] = set()
        self.monitor = SentinelMonitor(
            connect=sentinel.open_connection, on_event=self._event, on_state=self._state,
        )

    def watch_known(self) -> None:
        """Listen to every sentinel the client knows now."""
        for address in self._sentinel.addresses:
            self.monitor.watch(address)

    async def learn(self) -> None:
        """Ask the sentinels for their peers (``SENTINEL SENTINELS``) and listen to them."""
        try:
            peers = await self._sentinel.sentinels(self._service)
        except (RedisError, OSError) as exc:
            logger.debug("could not list the sentinels of %r: %s", self._service, exc)
            return
        for peer in peers:
            try:
                announced = (peer["ip"], int(peer["port"]))
            except (KeyError, ValueError):
                continue
            self._add(self._sentinel.remap(announced))

    def _add(self, address: Address) -> None:
        if self._sentinel.add(address):
            logger.info("learned sentinel %s for %r", address_text(address), self._service)
        self.monitor.watch(address)

    def _event(self, event: SentinelEvent) -> None:
        event = remap_event(event, self._sentinel.remap)
        if event.kind == "+sentinel" and event.address is not None:
            if event.master_name == self._service:
                self._add(event.address)
            return
        self._on_event(event)

    def _state(self, address: Address, up: bool) -> None:
        if not up:
            logger.info("sentinel %s lost (event subscription down)", address_text(address))
            return
        if address in self._seen:
            self._on_reconnect(address)
        self._seen.add(address)

    def close(self) -> None:
        """Stop every subscription."""
        self.monitor.close()

    async def wait_closed(self) -> None:
        """Wait until every subscription has ended."""
        await self.monitor.wait_closed()
