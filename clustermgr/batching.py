"""What a connection records for batches and for MULTI ... EXEC.

* :class:`BatchReplies`: the reply slots of one ``execute_batch`` (one
  future for the whole batch);
* :func:`prepare_batch` and :func:`refuse_in_batch`: the commands a batch
  cannot carry (they change connection state: a batch has no per-command
  state hooks);
* :func:`queue_in_multi`: the codec of each command queued between MULTI and
  EXEC/DISCARD, so EXEC's reply is decoded slot by slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from .bounds import blocking_wait
from .errors import ReplyError
from .execreply import ExecCodecs
from .protocol import BLOCKING_COMMANDS, case_variants, decode, encode_command, lookup_command

__all__ = [
    "BATCH_CHECKED_NAMES",
    "STATE_COMMANDS",
    "SUBSCRIBE_COMMANDS",
    "BatchReplies",
    "prepare_batch",
    "queue_in_multi",
    "refuse_in_batch",
    "refuse_untracked_replies",
]

#: Commands that change connection state (tracked from their replies).
STATE_COMMANDS = case_variants(
    "SELECT", "MULTI", "EXEC", "DISCARD", "QUIT", "WATCH", "UNWATCH", "AUTH", "CLIENT",
    "READONLY", "READWRITE", "RESET",
)
#: The (un)subscribe commands.
SUBSCRIBE_COMMANDS = case_variants(
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
)
# Looked at in a batch: state commands are refused there (CLIENT only for REPLY OFF/SKIP).
_BATCH_CHECKED = {**STATE_COMMANDS, **SUBSCRIBE_COMMANDS}
_UNTRACKABLE_REPLY_MODES = frozenset({b"OFF", b"SKIP"})
# Sent inside MULTI but not queued by the server (it refuses them at once).
_NOT_QUEUED = frozenset({b"MULTI", b"WATCH", b"QUIT"})

#: Lower-case names (``CommandInfo.name``) of the commands :func:`refuse_in_batch` looks at.
BATCH_CHECKED_NAMES = frozenset(name.decode().lower() for name in STATE_COMMANDS.values())


def _upper(value: Any) -> bytes:
    if isinstance(value, str):
        return value.upper().encode()
    return bytes(value).upper() if isinstance(value, (bytes, bytearray, memoryview)) else b""


def refuse_untracked_replies(command: Any, args: Sequence[Any]) -> None:
    """CLIENT REPLY OFF/SKIP would make replies and commands stop matching up: TypeError."""
    if (
        len(args) >= 2
        and _upper(args[0]) == b"REPLY"
        and _upper(args[1]) in _UNTRACKABLE_REPLY_MODES
    ):
        raise TypeError(
            "CLIENT REPLY OFF/SKIP is not supported: replies are matched to commands in order"
        )


def refuse_in_batch(command: Any, args: Sequence[Any]) -> None:
    """Raise TypeError if a batch cannot carry ``command``: it changes connection
    state (SELECT, WATCH, MULTI, ...; CLIENT only for REPLY OFF/SKIP)."""
    checked = lookup_command(STATE_COMMANDS, command)
    if checked is not None:
        _refuse_checked(checked, command, args)


def _refuse_checked(checked: bytes, command: Any, args: Sequence[Any]) -> None:
    """A batch command found in a state table: refused, but CLIENT only for REPLY OFF/SKIP."""
    if checked != b"CLIENT":
        raise TypeError(f"execute_batch: {command!r} changes connection state; use execute()")
    refuse_untracked_replies(command, args)


def prepare_batch(commands: Sequence[Sequence[Any]]) -> tuple[list[bytes], Any, float]:
    """The encoded commands of a batch, its first blocking command (or None), and
    how long its blocking commands may hold it in all (seconds, ``math.inf``:
    forever; see :func:`~clustermgr.bounds.blocking_wait`).

    Raises TypeError, before anything is sent, for an empty command, one that
    changes connection state or pub/sub, or arguments that cannot be sent.
    """
    payload: list[bytes] = []
    blocking: Any = None
    wait = 0.0
    for entry in commands:
        if not entry:
            raise TypeError("execute_batch: empty command")
        command = entry[0]
        args = tuple(entry[1:])
        checked = lookup_command(_BATCH_CHECKED, command)
        if checked is not None:
            _refuse_checked(checked, command, args)
        payload.append(encode_command(command, args))
        name = lookup_command(BLOCKING_COMMANDS, command)
        held = blocking_wait(name, args) if name is not None else None
        if held is not None:  # they run one after the other: their waits add up
            blocking = command if blocking is None else blocking
            wait += held
    return payload, blocking, wait


class BatchReplies:
    """Replies of a batch sent with ``RedisConnection.execute_batch``.

    One future for the whole batch; each reply lands in its slot (error
    replies as exception instances) and the future resolves with the list.
    ``blocking`` (if the batch holds a blocking command) is called with the
    last reply.
    """

    __slots__ = ("blocking", "future", "index", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], size: int, blocking: Any) -> None:
        self.future = future
        self.replies: list[Any] = [None] * size
        self.index = 0
        self.blocking = blocking

    def add(self, reply: Any, encoding: str | None) -> None:
        """Put the next reply in its slot; the last one resolves the future."""
        if encoding is not None and not isinstance(reply, ReplyError):
            try:
                reply = decode(reply, encoding)
            except Exception as exc:  # a bad codec fails this reply only
                reply = exc
        self.replies[self.index] = reply
        self.index += 1
        if self.index == len(self.replies):
            if self.blocking is not None:
                self.blocking(reply)
            if not self.future.done():
                self.future.set_result(self.replies)


def queue_in_multi(
    multi: ExecCodecs | None, special: bytes | None, encoding: Any, given: bool, default: Any
) -> tuple[ExecCodecs | None, Any]:
    """Record a command sent from MULTI to EXEC/DISCARD.

    ``multi`` is the record so far (None before MULTI), ``default`` the
    connection's codec. Returns the record after this command and the
    encoding its waiter carries. Every command the server queues gets a slot
    (SELECT and PING too); MULTI and WATCH inside MULTI are refused by the
    server and QUIT runs at once: none of them is queued. EXEC's waiter
    carries the recorded codecs (``encoding=`` given to EXEC itself applies
    to every slot).
    """
    if multi is None:  # MULTI opens the record
        return ExecCodecs(default), encoding
    if special == b"EXEC":
        return None, (multi.override(encoding) if given else multi)
    if special == b"DISCARD":
        return None, encoding
    if special not in _NOT_QUEUED:
        multi.codecs.append(encoding)
    return multi, encoding
