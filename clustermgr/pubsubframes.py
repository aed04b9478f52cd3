"""A connection's pub/sub side: its channel registries, and what each frame does.

The server sends pub/sub frames as arrays whose first item names the kind:
``message``/``pmessage``/``smessage`` deliver to a channel, and
``subscribe``/``unsubscribe`` (and the pattern and shard forms) confirm a
command of ours, or, when no such command waits, are the server's own doing
(a sharded channel whose slot moved).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from .abc import AbcChannel
from .protocol import encode_command
from .pubsub import PUBSUB_COMMANDS, parse_pubsub

__all__ = ["PUBSUB_EVENTS", "PubSubState", "PubSubWait"]

# Server confirmation kind -> (registry, subscribed?), derived from the command table.
_CONFIRMATIONS = {command.lower(): entry for command, entry in PUBSUB_COMMANDS.items()}
_MESSAGES = frozenset({b"message", b"pmessage", b"smessage"})
#: First items of the arrays that are pub/sub frames on a subscribed connection.
PUBSUB_EVENTS = _MESSAGES | frozenset(_CONFIRMATIONS)


class PubSubWait:
    """A pending (un)subscribe command waiting for its confirmations."""

    __slots__ = ("future", "kind", "pending", "remaining", "replies")

    def __init__(
        self,
        future: asyncio.Future[Any],
        kind: bytes,
        pending: dict[bytes, AbcChannel],
        remaining: int | None,
    ) -> None:
        self.future = future
        self.kind = kind
        self.pending = pending
        self.remaining = remaining  # None: "all", for UNSUBSCRIBE without names
        self.replies: list[Any] = []


class PubSubState:
    """The channels, patterns and shard channels one connection is subscribed to.

    ``server_unsubscribed(kind, channel)`` is called for a channel the server
    unsubscribed on its own.
    """

    __slots__ = (
        "_server_unsubscribed", "channels", "patterns", "pending", "shard_channels", "subscribed",
    )

    def __init__(self, server_unsubscribed: Callable[[bytes, AbcChannel], None]) -> None:
        self._server_unsubscribed = server_unsubscribed
        self.channels: dict[bytes, AbcChannel] = {}
        self.patterns: dict[bytes, AbcChannel] = {}
        self.shard_channels: dict[bytes, AbcChannel] = {}
        #: (Un)subscribe commands awaiting their confirmations.
        self.pending = 0
        #: Any channel, pattern or shard channel confirmed.
        self.subscribed = False

    def request(
        self, command: Any, channels: tuple[Any, ...], future: asyncio.Future[Any]
    ) -> tuple[bytes, bytes, PubSubWait]:
        """Check an (un)subscribe call (see :func:`parse_pubsub`) and count it pending.

        Returns the canonical command name, its encoded bytes and the wait that
        ``future`` resolves through once every channel is confirmed.
        """
        registries = {
            "channels": self.channels, "patterns": self.patterns,
            "shard_channels": self.shard_channels,
        }
        request = parse_pubsub(command, channels, registries)
        name, names = request.command, request.names
        pending = dict(zip(names, request.channels, strict=False))
        # The server confirms once per argument, duplicates included.
        wait = PubSubWait(future, name.lower(), pending, len(names) if names else None)
        data = encode_command(name, tuple(names))
        self.pending += 1
        return name, data, wait

    @property
    def count(self) -> int:
        """Number of subscribed channels, patterns and shard channels."""
        return len(self.channels) + len(self.patterns) + len(self.shard_channels)

    def on_frame(self, obj: list[Any], waiters: deque[Any]) -> None:
        """Handle one pub/sub frame; ``waiters`` is the connection's reply queue."""
        kind = obj[0]
        if kind in _MESSAGES:
            if kind == b"message":
                channel = self.channels.get(obj[1])
                if channel is not None:
                    channel.put_nowait(obj[2])
            elif kind == b"pmessage":
                channel = self.patterns.get(obj[1])
                if channel is not None:
                    channel.put_nowait((obj[2], obj[3]))
            else:
                channel = self.shard_channels.get(obj[1])
                if channel is not None:
                    channel.put_nowait(obj[2])
            return
        registry_name, subscribed = _CONFIRMATIONS[kind]
        registry: dict[bytes, AbcChannel] = getattr(self, registry_name)
        name = obj[1]
        head = waiters[0] if waiters else None
        wait = head[2] if head is not None else None
        if not isinstance(wait, PubSubWait) or wait.kind != kind:
            # Pushed by the server on its own (e.g. SUNSUBSCRIBE after a slot move).
            channel = registry.pop(name, None) if name is not None else None
            self.subscribed = bool(self.channels or self.patterns or self.shard_channels)
            if channel is not None:
                self._server_unsubscribed(kind, channel)
            return
        if subscribed:
            channel = wait.pending.get(name)
            if channel is not None:
                registry[name] = channel
        elif name is not None:
            channel = registry.pop(name, None)
            if channel is not None:
                channel.close()
        self.subscribed = bool(self.channels or self.patterns or self.shard_channels)
        wait.replies.append(obj)
        if wait.remaining is None:
            done = name is None or not registry
        else:
            wait.remaining -= 1
            done = wait.remaining <= 0
        if done:
            waiters.popleft()
            self.pending -= 1
            if not wait.future.done():
                wait.future.set_result(wait.replies)

    def release(
        self,
        cause: BaseException | None,
        forced: bool,
        lost: Callable[[BaseException | None], None] | None,
    ) -> None:
        """The connection is gone: forget every channel.

        ``lost(cause)``, when given, decides which channels end; else each is
        closed, its readers seeing ``cause`` unless the close was ``forced``
        (asked for by our side).
        """
        if lost is not None:
            lost(cause)
        else:
            for registry in (self.channels, self.patterns, self.shard_channels):
                for channel in registry.values():
                    channel.close(None if forced else cause)
        self.channels = {}
        self.patterns = {}
        self.shard_channels = {}
        self.pending = 0
        self.subscribed = False
