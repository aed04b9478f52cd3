"""Reply dispatch: bytes from the server become results of the waiting commands.

One :class:`ReplyDispatcher` per connection owns the reply parser and the
FIFO of waiters (one entry per reply awaited); :meth:`ReplyDispatcher.feed`
is the socket's ``data_received``. Replies go to waiters in order; pub/sub
frames on a subscribed connection go to its :class:`PubSubState`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .batching import BatchReplies
from .blocking import BlockingWait
from .errors import ConnectionClosedError, ProtocolError, ReplyError
from .execreply import ExecCodecs
from .protocol import PUSH_FRAME, case_variants, decode, excerpt, lookup_command
from .pubsubframes import PUBSUB_EVENTS, PubSubState, PubSubWait
from .replybound import DEFAULT_MAX_REPLY_SIZE, ReplyBound

__all__ = ["ErrorHook", "ReplyDispatcher", "Waiter", "retry_codec"]

logger = logging.getLogger("clustermgr.connection")

_PING = case_variants("PING")

#: Seconds between two log records about dropped RESP3 push frames (the first is
#: logged at once, later ones as one counted summary per interval).
PUSH_LOG_INTERVAL = 60.0

ErrorHook = Callable[
    [asyncio.Future[Any], BaseException, Any, tuple[Any, ...], "str | None"], bool
]
"""``on_error(future, error, command, args, encoding) -> handled``.

Called instead of failing ``future`` when its command gets an error reply or
its connection is lost. Returning True means the hook took the future over
(it will resolve it, e.g. after a retry elsewhere); False lets the error
through. Routing pools use it to follow MOVED/ASK without a second future."""

#: (future, encoding, state hook, error hook, command, args) per reply awaited.
Waiter = tuple[
    asyncio.Future[Any], "str | ExecCodecs | None", Any, "ErrorHook | None", Any, tuple[Any, ...]
]


def retry_codec(encoding: str | ExecCodecs | None) -> str | None:
    """The codec a retry of the command would ask for (EXEC's default for its codecs)."""
    return encoding.default if isinstance(encoding, ExecCodecs) else encoding


class ReplyDispatcher:
    """Matches the replies of one connection to its waiters.

    ``abort(error)`` drops the connection (a protocol error);
    ``max_reply_size`` bounds one reply's bytes (None: unbounded);
    ``count_error(name)`` counts an error reply; ``describe`` names the
    server in messages. ``on_progress``, when set, is called once per chunk
    that completed at least one reply or pub/sub frame (the stall check: bytes
    of an unfinished reply are no progress; RESP3 push frames neither).
    """

    __slots__ = (
        "_abort", "_bound", "_count_error", "_push_logged_at", "_pushes_unlogged", "_reader",
        "describe", "on_progress", "pubsub", "waiters",
    )

    def __init__(
        self,
        reader: Any,
        pubsub: PubSubState,
        *,
        abort: Callable[[BaseException], None],
        count_error: Callable[[str], None],
        describe: str,
        max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
    ) -> None:
        self._reader = reader
        self._bound = ReplyBound(max_reply_size) if max_reply_size is not None else None
        self.pubsub = pubsub
        self.waiters: deque[Waiter] = deque()
        self._abort = abort
        self._count_error = count_error
        self.describe = describe
        self.on_progress: Callable[[], None] | None = None
        self._push_logged_at: float | None = None
        self._pushes_unlogged = 0

    def feed(self, data: bytes) -> None:
        """Parse ``data`` and resolve the waiters of every complete reply in it.

        Whatever goes wrong in here (a protocol error, a reply past
        ``max_reply_size``, a malformed pub/sub frame, a parser's MemoryError)
        drops the connection with a typed :class:`ProtocolError`: its pending
        commands fail through :meth:`fail_pending`, nothing escapes to the loop.
        """
        refused = future = on_error = command = args = encoding = None
        completed = 0  # whole replies and pub/sub frames parsed (the stall clock)
        try:
            if self._bound is not None:
                refused = self._bound.scan(data)
                if refused is not None:  # parse the replies before the refused one only
                    data = data[:self._bound.stop]
            reader = self._reader
            reader.feed(data)
            waiters = self.waiters
            pubsub = self.pubsub
            while True:
                future = None  # no waiter is being handled until one is popped
                obj = reader.gets()
                if obj is False:
                    if refused is not None:
                        self._protocol_error(refused)
                    elif completed and self.on_progress is not None:
                        self.on_progress()
                    return
                completed += 1
                if type(obj) is list:
                    if obj and (
                        # Pushes come only once subscribed; before that, an array is the
                        # reply of the waiter at the head (a confirmation if it is an
                        # (un)subscribe).
                        pubsub.subscribed or (waiters and type(waiters[0][2]) is PubSubWait)
                    ):
                        if obj[0] in PUBSUB_EVENTS:
                            pubsub.on_frame(obj, waiters)
                            continue
                        if (
                            obj[0] == b"pong" and len(obj) == 2 and waiters
                            and lookup_command(_PING, waiters[0][4]) is not None
                        ):
                            # A subscribed PING answers as unsubscribed (as aioredis does).
                            obj = obj[1] if waiters[0][5] else b"PONG"
                elif type(obj) is PUSH_FRAME:
                    # A RESP3 push frame: never sent to a RESP2 connection, and never the
                    # reply of a command; dropped, so replies stay with their callers,
                    # and it is no progress (the stall clock runs on).
                    completed -= 1
                    self._push_dropped(obj)
                    continue
                if not waiters:
                    self._protocol_error(ProtocolError(
                        f"unexpected reply from {self.describe}: {excerpt(obj)}"
                    ))
                    return
                future, encoding, hook, on_error, command, args = waiters.popleft()
                if hook is not None:
                    kind = type(hook)
                    if kind is BatchReplies:
                        hook.add(obj, encoding)
                        continue
                    if kind is PubSubWait:  # the (un)subscribe command was refused
                        pubsub.pending -= 1
                    else:  # state is tracked from the reply, even if nobody awaits it
                        hook(obj)
                if future.done():  # cancelled by its caller; the reply is dropped
                    if type(hook) is BlockingWait and obj is not None and not isinstance(
                        obj, ReplyError
                    ):
                        logger.warning(
                            "%s: the server served %r just as its caller gave up; reply dropped",
                            self.describe, command,
                        )
                    continue
                if isinstance(obj, ReplyError):
                    self._count_error(type(obj).__name__)
                    if on_error is None or not on_error(
                        future, obj, command, args, retry_codec(encoding)
                    ):
                        future.set_exception(obj)
                    continue
                if encoding is not None:
                    try:
                        if isinstance(encoding, str):
                            obj = decode(obj, encoding)
                        else:  # EXEC in MULTI: a codec per slot
                            obj = encoding.apply(obj)
                    except RecursionError:
                        raise
                    except Exception as exc:  # a bad codec fails this command only
                        future.set_exception(exc)
                        continue
                future.set_result(obj)
        except ProtocolError as exc:
            self._protocol_error(exc, (future, encoding, on_error, command, args))
        except Exception as exc:  # MemoryError, RecursionError, a short pub/sub frame...
            error = ProtocolError(
                f"cannot handle a reply from {self.describe}: {type(exc).__name__}: "
                f"{excerpt(str(exc))}"
            )
            error.__cause__ = exc
            self._protocol_error(error, (future, encoding, on_error, command, args))

    def _push_dropped(self, frame: Any) -> None:
        """Log a dropped push frame: the first at once, then one count per interval."""
        now = time.monotonic()
        if self._push_logged_at is None:
            logger.warning(
                "%s sent a RESP3 push frame to a RESP2 connection; dropped: %s",
                self.describe, excerpt(frame),
            )
            self._push_logged_at = now
            return
        self._pushes_unlogged += 1
        if now - self._push_logged_at >= PUSH_LOG_INTERVAL:
            logger.warning(
                "%s sent %d more RESP3 push frames to a RESP2 connection; dropped, last: %s",
                self.describe, self._pushes_unlogged, excerpt(frame),
            )
            self._push_logged_at = now
            self._pushes_unlogged = 0

    def report_dropped_pushes(self) -> None:
        """At close: one log record counting the push frames dropped since the last one."""
        if self._pushes_unlogged:
            logger.warning(
                "%s sent %d more RESP3 push frames to a RESP2 connection before it closed; "
                "dropped", self.describe, self._pushes_unlogged,
            )
            self._pushes_unlogged = 0

    def _protocol_error(self, error: ProtocolError, taken: tuple[Any, ...] | None = None) -> None:
        """Drop the connection for ``error``.

        ``taken`` is the waiter whose reply was being handled (future, encoding,
        error hook, command, args): already off the queue, it fails here as
        :meth:`fail_pending` fails the others (written: it may have run).
        """
        logger.error("protocol error from %s: %s", self.describe, error)
        if taken is not None and taken[0] is not None and not taken[0].done():
            future, encoding, on_error, command, args = taken
            lost = ConnectionClosedError(
                f"connection to {self.describe} lost: {error}", may_have_executed=True
            )
            lost.__cause__ = error
            if on_error is None or not on_error(future, lost, command, args, retry_codec(encoding)):
                future.set_exception(lost)
        self._abort(error)

    def fail_pending(
        self,
        error_cls: type[ConnectionClosedError],
        message: str,
        cause: BaseException | None,
        written: int,
    ) -> None:
        """Fail every waiter with ``error_cls(message)``; the first ``written`` may have run.

        Each waiter's error hook may take its future over instead.
        """
        for index, (future, enc, hook, on_error, command, args) in enumerate(self.waiters):
            target = hook.future if isinstance(hook, PubSubWait) else future
            if not target.done():
                error = error_cls(message, may_have_executed=index < written)
                error.__cause__ = cause
                codec = retry_codec(enc)
                if on_error is not None and on_error(future, error, command, args, codec):
                    continue
                target.set_exception(error)
        self.waiters.clear()
        self.pubsub.pending = 0
