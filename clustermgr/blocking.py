"""The blocking commands (BLPOP, XREAD BLOCK, WAIT, ...) a connection awaits.

A blocking command may wait on the server for as long as its timeout says,
so the connection counts those in flight and when the last of them may
still be waiting (its stall check starts only then), and closes itself
when a caller gives up on one: the server then unblocks the command
without serving it, and nothing queues behind it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["BlockingCommands", "BlockingWait", "reply_waiting", "warn_if_replied"]

logger = logging.getLogger("clustermgr.connection")


class BlockingCommands:
    """The blocking commands of one connection awaiting their reply.

    ``on_given_up(command)`` is called when the caller of a pending one
    cancels its future (the connection closes itself there).
    """

    __slots__ = ("_on_given_up", "count", "until")

    def __init__(self, on_given_up: Callable[[Any], None]) -> None:
        #: Blocking commands (or batches holding one) awaiting their reply.
        self.count = 0
        #: Loop time until which the server may hold them (``math.inf``: forever).
        self.until = 0.0
        self._on_given_up = on_given_up

    def track(self, command: Any, until: float) -> BlockingWait:
        """Count ``command`` as pending, held at most ``until``; the hook its reply ends."""
        self.count += 1
        if until > self.until:
            self.until = until
        return BlockingWait(self, command)

    def clear(self) -> None:
        """Nothing is pending any more (the connection is gone)."""
        self.count = 0
        self.until = 0.0


class BlockingWait:
    """One pending blocking command: called with its reply, watches its future."""

    __slots__ = ("_owner", "command", "pending")

    def __init__(self, owner: BlockingCommands, command: Any) -> None:
        self._owner = owner
        self.command = command
        self.pending = True

    def __call__(self, reply: Any) -> None:
        if self.pending:
            self.pending = False
            owner = self._owner
            owner.count -= 1
            if not owner.count:
                owner.until = 0.0

    def given_up(self, future: asyncio.Future[Any]) -> None:
        """Done-callback of the command's future: a cancel before the reply gives it up."""
        if future.cancelled() and self.pending:
            self._owner._on_given_up(self.command)


def warn_if_replied(transport: asyncio.BaseTransport | None, describe: str, command: Any) -> None:
    """Log that given-up ``command`` may have been served, if its reply is already arriving."""
    if reply_waiting(transport):
        logger.warning(
            "%s: %r was given up with a reply already arriving: the server may "
            "have served it; the reply is dropped", describe, command,
        )


def reply_waiting(transport: asyncio.BaseTransport | None) -> bool:
    """True if bytes from the server wait unread in the socket (peeked, not read)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    try:
        with sock.dup() as peek:
            return bool(peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:
        return False
