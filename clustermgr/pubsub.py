"""Pub/sub channels: :class:`Channel` for one subscription, :class:`Receiver` for many.

A channel stays open across reconnects when it was subscribed through a pool:
the pool resubscribes it and it goes on receiving. It ends only when it is
unsubscribed or its pool is closed.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, NamedTuple, cast

from .abc import AbcChannel
from .errors import ChannelClosedError
from .protocol import case_variants, lookup_command

__all__ = [
    "PUBSUB_COMMANDS",
    "SUBSCRIBE_COMMANDS",
    "Channel",
    "ChannelMap",
    "PubSubRequest",
    "Receiver",
    "as_channel",
    "is_pubsub_command",
    "parse_pubsub",
]

#: Canonical (un)subscribe command -> (registry it changes, subscribing?).
PUBSUB_COMMANDS: dict[bytes, tuple[str, bool]] = {
    b"SUBSCRIBE": ("channels", True),
    b"PSUBSCRIBE": ("patterns", True),
    b"SSUBSCRIBE": ("shard_channels", True),
    b"UNSUBSCRIBE": ("channels", False),
    b"PUNSUBSCRIBE": ("patterns", False),
    b"SUNSUBSCRIBE": ("shard_channels", False),
}
#: Registry -> the command that subscribes to it (for resubscribing).
SUBSCRIBE_COMMANDS: dict[str, bytes] = {
    registry: command for command, (registry, subscribing) in PUBSUB_COMMANDS.items()
    if subscribing
}
_LOOKUP = case_variants(*(name.decode() for name in PUBSUB_COMMANDS))


def is_pubsub_command(command: Any) -> bool:
    """True for (P|S)SUBSCRIBE and (P|S)UNSUBSCRIBE in any case."""
    return lookup_command(_LOOKUP, command) is not None


class PubSubRequest(NamedTuple):
    """An (un)subscribe call, checked and resolved (see :func:`parse_pubsub`)."""

    command: bytes
    registry: str
    subscribing: bool
    names: list[bytes]
    channels: list[AbcChannel]


#: What a channel object must offer (aioredis 1.x's AbcChannel interface).
_CHANNEL_API = ("name", "is_pattern", "is_active", "put_nowait", "close")


def as_channel(item: Any) -> AbcChannel | None:
    """``item`` as a channel object, or None for anything else.

    Any object with :class:`AbcChannel`'s interface counts, so aioredis 1.x's
    own ``Channel`` and ``Receiver`` senders can be subscribed as they are.
    """
    if isinstance(item, AbcChannel):
        return item
    if isinstance(item, (bytes, str)) or not all(hasattr(item, a) for a in _CHANNEL_API):
        return None
    return cast(AbcChannel, item)


class ChannelMap(Mapping[bytes, AbcChannel]):
    """A read-only view of channels by name; str keys are looked up UTF-8 encoded.

    As aioredis 1.x's ``coerced_keys_dict``: ``view["news"]`` finds ``b"news"``.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[bytes, AbcChannel]) -> None:
        self._data = data

    def __getitem__(self, key: bytes | str) -> AbcChannel:
        return self._data[key.encode() if isinstance(key, str) else key]

    def __contains__(self, key: object) -> bool:
        return (key.encode() if isinstance(key, str) else key) in self._data

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ChannelMap({dict(self._data)!r})"


def parse_pubsub(
    command: Any, items: tuple[Any, ...], registries: Mapping[str, Mapping[bytes, AbcChannel]]
) -> PubSubRequest:
    """Check an (un)subscribe call and resolve its channel arguments.

    ``items`` are names (bytes/str) or channel objects (see :func:`as_channel`).
    When subscribing, each name becomes the channel object given for it in
    the same call, else the open channel already in ``registries[registry]``,
    else a new :class:`Channel` (a name given twice is one channel). Raises ValueError for
    a command that is not (un)subscribe and TypeError for bad channels: a
    pattern channel given to SUBSCRIBE/SSUBSCRIBE, a plain one to PSUBSCRIBE.
    Nothing is sent before these checks pass.
    """
    name = lookup_command(_LOOKUP, command)
    if name is None:
        raise ValueError(f"{command!r} is not a pub/sub (un)subscribe command")
    registry, subscribing = PUBSUB_COMMANDS[name]
    if subscribing and not items:
        raise TypeError(f"{name.decode()} needs at least one channel")
    wants_pattern = registry == "patterns"
    names: list[bytes] = []
    given: dict[bytes, AbcChannel] = {}  # the caller's channel objects (the last one of a name)
    for item in items:
        channel = as_channel(item)
        if channel is not None:
            key = channel.name
            if bool(channel.is_pattern) != wants_pattern:
                raise ValueError(
                    f"{name.decode()} needs a {'pattern' if wants_pattern else 'non-pattern'} "
                    f"channel, got {channel!r} (is_pattern={channel.is_pattern})"
                )
            if subscribing:
                given[key] = channel
        elif isinstance(item, (bytes, str)):
            key = item.encode() if isinstance(item, str) else item
        else:
            raise TypeError(f"channel must be bytes, str or a Channel, not {item!r}")
        names.append(key)
    channels: list[AbcChannel] = []
    if subscribing:  # every occurrence of a name is one channel
        known = registries[registry]
        for key in names:
            channel = given.get(key)
            if channel is None:
                channel = known.get(key)
                if channel is None or not _reusable(channel):
                    channel = Channel(key, wants_pattern)
                given[key] = channel
            channels.append(channel)
    return PubSubRequest(name, registry, subscribing, names, channels)


def _reusable(channel: AbcChannel) -> bool:
    """True if a SUBSCRIBE by name may reuse ``channel``: not closed (by its user or else)."""
    if isinstance(channel, Channel):
        return not channel.closed
    return bool(channel.is_active)

Decoder = Callable[[Any], Any]


#: What a reader waiting when its queue closes gets from :meth:`_MessageQueue.get`.
_END: Any = object()


class _MessageQueue:
    """An unbounded FIFO that can be closed; every waiting getter wakes on put or close.

    Readers woken together race for the items; those that find none wait
    again, so several tasks can read one channel and all of them end on close.
    """

    __slots__ = ("_closed", "_error", "_items", "_waiters")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._error: BaseException | None = None

    def put(self, item: Any) -> None:
        if self._closed:  # closed stays closed: later messages are dropped
            return
        self._items.append(item)
        if self._waiters:
            self._wake()

    def close(self, exc: BaseException | None) -> None:
        self._closed = True
        self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    async def wait(self) -> bool:
        """Wait for an item; False once closed and drained."""
        while not self._items:
            if self._closed:
                return False
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        return True

    async def get(self, what: str) -> Any:
        """The next item; :data:`_END` if the queue closes while waiting (aioredis 1.x).

        Raises ChannelClosedError (``__cause__``: the close's exception) when
        called on a queue already closed and drained.
        """
        if self._closed and not self._items:
            raise ChannelClosedError(f"{what} is closed") from self._error
        if not await self.wait():
            return _END
        return self._items.popleft()

    def pop(self) -> Any:
        """The next item, which must be there (after :meth:`wait` returned True)."""
        return self._items.popleft()


def _convert(data: Any, encoding: str | None, decoder: Decoder | None) -> Any:
    if encoding is not None and isinstance(data, bytes):
        data = data.decode(encoding)
    if decoder is not None:
        data = decoder(data)
    return data


def _sent(
    item: tuple[AbcChannel, Any], encoding: str | None, decoder: Decoder | None
) -> tuple[AbcChannel, Any]:
    """A Receiver's queued ``(sender, data)`` as its reader gets it."""
    sender, data = item
    if sender.is_pattern:
        channel, data = data
        return sender, (channel, _convert(data, encoding, decoder))
    return sender, _convert(data, encoding, decoder)


class Channel(AbcChannel):
    """One subscribed channel or pattern, read with :meth:`get` or :meth:`iter`.

    Pattern channels yield ``(channel_name, message)`` tuples.
    """

    __slots__ = ("_is_pattern", "_name", "_queue")

    def __init__(self, name: bytes | str, is_pattern: bool = False) -> None:
        self._name = name.encode() if isinstance(name, str) else name
        self._is_pattern = is_pattern
        self._queue = _MessageQueue()

    @property
    def name(self) -> bytes:
        """Encoded channel name or pattern."""
        return self._name

    @property
    def is_pattern(self) -> bool:
        """True for a pattern subscription."""
        return self._is_pattern

    @property
    def is_active(self) -> bool:
        """True while open or while unread messages remain."""
        return not self._queue.closed or len(self._queue) > 0

    @property
    def qsize(self) -> int:
        """Number of unread messages."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        """True once closed (unread messages may remain); it receives nothing more."""
        return self._queue.closed

    def put_nowait(self, data: Any) -> None:
        """Deliver a message (called by the connection)."""
        self._queue.put(data)

    def close(self, exc: BaseException | None = None) -> None:
        """Mark closed; readers get the remaining messages, then the end (see :meth:`get`).

        A channel closed by its user stays closed: it takes no more messages,
        and a later SUBSCRIBE of its name gets a fresh channel (the old one
        stays subscribed on the server until then or until UNSUBSCRIBE).
        """
        self._queue.close(exc)

    async def get(self, *, encoding: str | None = None, decoder: Decoder | None = None) -> Any:
        """Wait for the next message; None if the channel ends while waiting.

        As aioredis 1.x: every reader waiting when the channel ends gets
        None, and a ``get()`` on a channel already ended and drained raises
        ChannelClosedError (its ``__cause__`` is the exception the channel
        was closed with, e.g. the one that ended the connection). A decoder
        may return None too: ``is_active`` (still True then) tells them apart.
        For patterns the message is ``(channel, data)``; ``encoding`` and
        ``decoder`` apply to ``data``.
        """
        item = await self._queue.get(repr(self))
        return None if item is _END else self._message(item, encoding, decoder)

    def _message(self, item: Any, encoding: str | None, decoder: Decoder | None) -> Any:
        if self._is_pattern:
            channel, data = item
            return channel, _convert(data, encoding, decoder)
        return _convert(item, encoding, decoder)

    async def get_json(self, encoding: str = "utf-8") -> Any:
        """Wait for the next message and decode it as JSON."""
        return await self.get(encoding=encoding, decoder=json.loads)

    async def wait_message(self) -> bool:
        """Wait until a message is available; False when the channel has ended."""
        return await self._queue.wait()

    async def iter(
        self, *, encoding: str | None = None, decoder: Decoder | None = None
    ) -> AsyncIterator[Any]:
        """Iterate over messages until the channel ends."""
        while await self._queue.wait():
            yield self._message(self._queue.pop(), encoding, decoder)

    def __repr__(self) -> str:
        kind = "pattern" if self._is_pattern else "channel"
        state = "active" if self.is_active else "closed"
        return f"<Channel {kind}={self._name!r} {state} qsize={len(self._queue)}>"


class _Sender(AbcChannel):
    """A channel that forwards its messages into a Receiver's shared queue."""

    __slots__ = ("_closed", "_is_pattern", "_name", "_receiver")

    def __init__(self, receiver: Receiver, name: bytes, is_pattern: bool) -> None:
        self._receiver = receiver
        self._name = name
        self._is_pattern = is_pattern
        self._closed = False

    @property
    def name(self) -> bytes:
        return self._name

    @property
    def is_pattern(self) -> bool:
        return self._is_pattern

    @property
    def is_active(self) -> bool:
        return not self._closed

    def put_nowait(self, data: Any) -> None:
        self._receiver._queue.put((self, data))

    def close(self, exc: BaseException | None = None) -> None:
        if not self._closed:
            self._closed = True
            self._receiver._sender_closed(self, exc)

    def __repr__(self) -> str:
        kind = "pattern" if self._is_pattern else "channel"
        return f"<Receiver {kind}={self._name!r}>"


class Receiver:
    """Collects messages of many channels and patterns into one queue.

    ``await redis.subscribe(receiver.channel("a"), receiver.pattern("b*"))``,
    then ``await receiver.get()`` returns ``(sender, message)``.

    As aioredis' ``Receiver``: ``on_close(sender, exc=None)`` is called when a
    sender closes (unsubscribed, its pool closed); the default,
    :meth:`check_stop`, stops the receiver once its last sender has closed,
    which ends :meth:`iter` after the messages already queued.
    """

    def __init__(self, on_close: Callable[..., Any] | None = None) -> None:
        self._queue = _MessageQueue()
        self._senders: dict[tuple[bytes, bool], _Sender] = {}
        self._on_close = self.check_stop if on_close is None else on_close

    def channel(self, name: bytes | str) -> AbcChannel:
        """A sender for channel ``name`` to pass to SUBSCRIBE."""
        return self._sender(name, False)

    def pattern(self, pattern: bytes | str) -> AbcChannel:
        """A sender for ``pattern`` to pass to PSUBSCRIBE."""
        return self._sender(pattern, True)

    def _sender(self, name: bytes | str, is_pattern: bool) -> _Sender:
        key = (name.encode() if isinstance(name, str) else name, is_pattern)
        sender = self._senders.get(key)
        if sender is None or not sender.is_active:
            sender = self._senders[key] = _Sender(self, key[0], is_pattern)
        return sender

    @property
    def channels(self) -> dict[bytes, AbcChannel]:
        """Active channel senders by name."""
        return {n: s for (n, p), s in self._senders.items() if not p and s.is_active}

    @property
    def patterns(self) -> dict[bytes, AbcChannel]:
        """Active pattern senders by pattern."""
        return {n: s for (n, p), s in self._senders.items() if p and s.is_active}

    @property
    def is_active(self) -> bool:
        """True while a sender is open or messages remain."""
        return len(self._queue) > 0 or any(s.is_active for s in self._senders.values())

    async def get(
        self, *, encoding: str | None = None, decoder: Decoder | None = None
    ) -> tuple[AbcChannel, Any] | None:
        """Wait for the next ``(sender, message)``; None if stopped while waiting.

        As :meth:`Channel.get`: after :meth:`stop` and the last message,
        ``get()`` raises ChannelClosedError.
        """
        item = await self._queue.get(repr(self))
        return None if item is _END else _sent(item, encoding, decoder)

    async def wait_message(self) -> bool:
        """Wait for a message; False once stopped and drained."""
        return await self._queue.wait()

    async def iter(
        self, *, encoding: str | None = None, decoder: Decoder | None = None
    ) -> AsyncIterator[tuple[AbcChannel, Any]]:
        """Iterate over ``(sender, message)`` until stopped."""
        while await self._queue.wait():
            yield _sent(self._queue.pop(), encoding, decoder)

    def stop(self) -> None:
        """Stop receiving: no more messages are accepted."""
        for sender in list(self._senders.values()):
            sender._closed = True
        self._queue.close(None)

    def check_stop(self, sender: AbcChannel, exc: BaseException | None = None) -> None:
        """Stop once no sender is left open (the default ``on_close``)."""
        if not self._senders:
            self.stop()

    def _sender_closed(self, sender: _Sender, exc: BaseException | None) -> None:
        key = (sender.name, sender.is_pattern)
        if self._senders.get(key) is sender:
            del self._senders[key]
        self._on_close(sender, exc=exc)

    def __repr__(self) -> str:
        return f"<Receiver senders={len(self._senders)} qsize={len(self._queue)}>"
