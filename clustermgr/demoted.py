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
for the dispatcher to skip. Commands not yet written are taken back instead
(:func:`withdraw_unsent`): they cannot have run, and are not sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from .dispatch import ErrorHook, Waiter, retry_codec
from .errors import ConnectionClosedError, ConnectionForcedCloseError, ReplyError

__all__ = ["DemotedReply", "all_plain", "demote_plain", "demote_waiters", "withdraw_unsent"]


class DemotedReply:
    """Answers for one command whose reply comes from a demoted master.

    Called by the dispatcher with the reply (the state-hook slot), it
    resolves the caller's ``future``: error replies pass to ``on_error`` (or
    fail the future), acknowledgements become a may-have-executed error.
    :meth:`lost` is the waiter's error hook when the connection ends first.
    """

    __slots__ = (
        "args", "codec", "command", "count_error", "describe", "future", "on_error", "stand_in",
    )

    def __init__(
        self,
        future: asyncio.Future[Any],
        on_error: ErrorHook | None,
        command: Any,
        args: tuple[Any, ...],
        codec: str | None,
        describe: str,
        count_error: Callable[[str], None],
    ) -> None:
        self.future = future
        self.on_error = on_error
        self.command = command
        self.args = args
        self.codec = codec
        self.describe = describe
        self.count_error = count_error
        #: What the dispatcher's queue holds instead of ``future``: done once answered.
        self.stand_in: asyncio.Future[Any] = future.get_loop().create_future()

    def __call__(self, reply: Any) -> None:
        self.stand_in.set_result(None)  # the dispatcher skips the waiter from here on
        if isinstance(reply, ReplyError):
            self.count_error(type(reply).__name__)
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
        if not self.stand_in.done():
            self.stand_in.set_result(None)
        if not self.future.done():
            self._fail(error)
        return True

    def _fail(self, error: BaseException) -> None:
        on_error = self.on_error
        if on_error is None or not on_error(
            self.future, error, self.command, self.args, self.codec
        ):
            self.future.set_exception(error)


def all_plain(waiters: deque[Waiter]) -> bool:
    """No waiter is a batch, a state or pub/sub command or a blocking one."""
    return all(hook is None for _, _, hook, _, _, _ in waiters)


def demote_waiters(
    waiters: deque[Waiter], describe: str, count_error: Callable[[str], None]
) -> list[DemotedReply]:
    """Rewrite every waiter of ``waiters`` (all plain: :func:`all_plain`) to be
    answered by a :class:`DemotedReply`; returns them. ``count_error(name)``
    counts an error reply, as the dispatcher does."""
    replies = []
    for index, (future, encoding, _, on_error, command, args) in enumerate(waiters):
        reply = DemotedReply(
            future, on_error, command, args, retry_codec(encoding), describe, count_error
        )
        waiters[index] = (reply.stand_in, encoding, reply, reply.lost, command, args)
        replies.append(reply)
    return replies


def withdraw_unsent(waiters: deque[Waiter], count: int, describe: str) -> None:
    """Take the last ``count`` waiters (plain, never written) off ``waiters`` and
    fail each with ``may_have_executed=False`` (its error hook may retry it)."""
    unsent = [waiters.pop() for _ in range(count)]
    for future, encoding, _, on_error, command, args in reversed(unsent):
        if future.done():
            continue
        error = ConnectionClosedError(
            f"{describe} was demoted from master before the command was sent",
            may_have_executed=False,
        )
        if on_error is None or not on_error(future, error, command, args, retry_codec(encoding)):
            future.set_exception(error)


def demote_plain(
    waiters: deque[Waiter],
    unsent: int,
    describe: str,
    count_error: Callable[[str], None],
    grace: float,
    drop: Callable[[BaseException], None],
) -> None:
    """Demote a connection whose ``waiters`` are all plain: the last ``unsent``
    were never written (withdrawn, failed as not executed), the others get a
    :class:`DemotedReply`; ``drop(error)`` ends the connection if any of them
    is still unanswered ``grace`` seconds later."""
    if unsent:
        withdraw_unsent(waiters, unsent, describe)
    if not waiters:
        return
    demoted = demote_waiters(waiters, describe, count_error)

    def end_of_grace() -> None:
        if any(not reply.stand_in.done() for reply in demoted):
            drop(ConnectionAbortedError(
                f"{describe} was demoted from master and left replies unanswered for {grace}s"
            ))

    asyncio.get_running_loop().call_later(grace, end_of_grace)
