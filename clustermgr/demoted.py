"""Replies still due from a server that has just stopped being a master.

When a slot map demotes a master (its replica took over), commands already
written to it may still be answered. A redirect or another error reply is
the server's word that the command did not run there: it goes to the
command's error hook as usual (MOVED is followed to the new master). An
acknowledgement is not trusted: the old master accepted the write after its
replica took over, and will lose it when it resyncs, so the command fails
with :class:`~clustermgr.errors.ConnectionForcedCloseError`
(``may_have_executed=True``; a routing pool retries it only if it is
read-only). :func:`demote_waiters` rewrites a connection's queue of waiters
this way without touching the per-reply path: each waiter gets a
:class:`DemotedReply` state hook that answers for it, and a stand-in future
for the dispatcher to skip.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from .dispatch import ErrorHook, Waiter
from .errors import ConnectionForcedCloseError, ReplyError

__all__ = ["DemotedReply", "demote_waiters"]


class DemotedReply:
    """Answers for one command whose reply comes from a demoted master.

    Called by the dispatcher with the reply (the state-hook slot), it
    resolves the caller's ``future``: error replies pass to ``on_error`` (or
    fail the future), acknowledgements become a may-have-executed error.
    :meth:`lost` is the waiter's error hook when the connection ends first.
    """

    __slots__ = ("args", "codec", "command", "describe", "future", "on_error", "stand_in")

    def __init__(
        self,
        future: asyncio.Future[Any],
        on_error: ErrorHook | None,
        command: Any,
        args: tuple[Any, ...],
        codec: str | None,
        describe: str,
    ) -> None:
        self.future = future
        self.on_error = on_error
        self.command = command
        self.args = args
        self.codec = codec
        self.describe = describe
        #: What the dispatcher's queue holds instead of ``future``: done once answered.
        self.stand_in: asyncio.Future[Any] = future.get_loop().create_future()

    def __call__(self, reply: Any) -> None:
        self.stand_in.set_result(None)  # the dispatcher skips the waiter from here on
        if self.future.done():  # the caller gave up
            return
        if isinstance(reply, ReplyError):
            self._fail(reply)
            return
        name = self.command.decode() if isinstance(self.command, bytes) else str(self.command)
        self._fail(ConnectionForcedCloseError(
            f"{self.describe} answered {name.upper()} after it was demoted from master: "
            "its acknowledgement may be lost when it resyncs",
            may_have_executed=True,
        ))

    def lost(
        self, _stand_in: asyncio.Future[Any], error: BaseException, *_: Any
    ) -> bool:
        """The waiter's error hook: the connection ended before the reply."""
        if not self.future.done():
            self._fail(error)
        return True

    def _fail(self, error: BaseException) -> None:
        on_error = self.on_error
        if on_error is None or not on_error(
            self.future, error, self.command, self.args, self.codec
        ):
            self.future.set_exception(error)


def demote_waiters(waiters: deque[Waiter], describe: str) -> list[DemotedReply] | None:
    """Rewrite every waiter of ``waiters`` to be answered by a :class:`DemotedReply`.

    Returns them, or None (nothing changed) when a waiter is not a plain
    command (a batch, a state or pub/sub command, a blocking one): the
    caller then closes the connection.
    """
    if any(hook is not None for _, _, hook, _, _, _ in waiters):
        return None
    replies = []
    for index, (future, encoding, _, on_error, command, args) in enumerate(waiters):
        codec = encoding if isinstance(encoding, str) or encoding is None else None
        reply = DemotedReply(future, on_error, command, args, codec, describe)
        waiters[index] = (reply.stand_in, encoding, reply, reply.lost, command, args)
        replies.append(reply)
    return replies
