"""Checking and placing the commands of one batch, before anything is sent.

:class:`BatchPlan` checks every command: a command that is not a sequence, an
argument of a type that cannot be sent, a command a batch cannot carry
(SELECT, WATCH, MULTI, ...) raise TypeError; a ``str`` that is not valid UTF-8
(a lone surrogate) raises ValueError; an unknown ``encoding`` raises
LookupError -- and then nothing has been sent.

It cuts the batch into *segments*, run one after the other: each command that
does not go to one slot's node (keyless, cross-slot, blocking, pub/sub: run
with the router's ``execute``) is a segment of its own, and the commands
between two such are one segment. It marks the *multi-key* commands (a later
command of their slot naming one of their keys waits for their reply) and the
segments where that happens; :mod:`.batch` sends the segments.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from typing import Any

from ..commands import CommandInfo
from ..connection import BATCH_CHECKED_NAMES, refuse_in_batch
from ..errors import CrossSlotError
from ..protocol import is_blocking
from ..pubsub import is_pubsub_command

__all__ = ["BatchPlan", "Segment"]

_ARG_TYPES = (bytes, str, int, float, memoryview, bytearray)
_NOT_A_COMMAND = (str, bytes, bytearray, memoryview)
_FAST_TYPES = frozenset({bytes, str, int, float})

Segment = int | list[int]  # one command run alone, or commands grouped per slot


def _check(index: int, entry: Any) -> None:
    kind = type(entry)
    if ((kind is not tuple and kind is not list) and (
        isinstance(entry, _NOT_A_COMMAND) or not isinstance(entry, Sequence)
    )) or not entry:
        raise TypeError(
            f"execute_batch: command {index} must be a non-empty sequence "
            f"(command, *args), not {entry!r}"
        )
    command = entry[0]
    if type(command) is not bytes and type(command) is not str:
        raise TypeError(f"execute_batch: command {index} has name {command!r}; "
                        "a name is bytes or str")
    for position, arg in enumerate(entry):
        if type(arg) not in _FAST_TYPES and (
            isinstance(arg, bool) or not isinstance(arg, _ARG_TYPES)
        ):
            raise TypeError(
                f"execute_batch: argument {position} of command {index} ({command!r}) has "
                f"type {type(arg).__name__}; commands take bytes, str, int or float"
            )


def _check_text(index: int, entry: Sequence[Any]) -> None:
    """Every ``str`` of ``entry`` can be sent as UTF-8 (ValueError if not)."""
    for position, arg in enumerate(entry):
        if type(arg) is str and not arg.isascii():
            try:
                arg.encode()
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"execute_batch: argument {position} of command {index} "
                    f"({entry[0]!r}) cannot be encoded as UTF-8: {exc.reason}"
                ) from exc


def _check_kwargs(kwargs: dict[str, Any]) -> None:
    for name in kwargs:
        if name != "encoding":
            raise TypeError(f"execute_batch got an unexpected keyword argument {name!r}")
    encoding = kwargs.get("encoding")
    if type(encoding) is str:
        codecs.lookup(encoding)  # LookupError now, not after the commands ran


def _multi_key(info: CommandInfo) -> bool:
    """Whether ``info``'s command may name several keys (a migrating slot: TRYAGAIN)."""
    return info.movablekeys or info.last_key != info.first_key


class BatchPlan:
    """The commands of one ``execute_batch`` call, checked, classified and cut into segments.

    ``lookup`` gives a command's info (an empty name for unknown commands);
    ``plain_kind`` says whether a command of that info may go through a node
    pool's plain (unchecked) batch entry point.
    """

    __slots__ = ("barriers", "checked", "infos", "ordered", "segments", "slots")

    def __init__(
        self,
        commands: Sequence[Sequence[Any]],
        kwargs: dict[str, Any],
        lookup: Callable[[bytes | str], CommandInfo],
        plain_kind: Callable[[CommandInfo], bool],
    ) -> None:
        if isinstance(commands, _NOT_A_COMMAND) or not isinstance(commands, Sequence):
            raise TypeError(f"execute_batch takes a sequence of commands, not {commands!r}")
        _check_kwargs(kwargs)
        size = len(commands)
        #: Per grouped command: its (sub)command info (None if unknown) and slot.
        self.infos: list[CommandInfo | None] = [None] * size
        self.slots: list[int] = [0] * size
        #: The segments, in order: a command run alone, or commands grouped per slot.
        self.segments: list[Segment] = []
        infos, slots, segments = self.infos, self.slots, self.segments
        #: Commands whose slot's later commands wait for their reply.
        self.barriers: set[int] = set()
        #: Grouped commands that are not plain (unknown names, XREAD without
        #: BLOCK): their group goes through the node pool's checked execute_batch.
        self.checked: set[int] = set()
        #: Segments (by position) where a command names a slot after a multi-key one.
        self.ordered: set[int] = set()
        fast, checked = _FAST_TYPES, BATCH_CHECKED_NAMES
        grouped: list[int] = []
        held: set[int] = set()  # slots of the segment's multi-key commands
        for index, entry in enumerate(commands):
            kind = type(entry)
            if (kind is not tuple and kind is not list) or not entry:
                _check(index, entry)  # raises unless an acceptable sequence
            command, args = entry[0], entry[1:]
            if type(command) is not bytes and type(command) is not str:
                _check(index, entry)
            for arg in entry:
                if type(arg) not in fast:
                    _check(index, entry)
                elif type(arg) is str and not arg.isascii():
                    _check_text(index, entry)
            info = lookup(command)
            if info.name in checked or not info.name:
                refuse_in_batch(command, args)
            try:
                slot = info.slot_of(args)
            except CrossSlotError:  # split (or refused) by execute
                slot = None
            if (
                slot is None
                or (info.pubsub and is_pubsub_command(command))
                or (info.is_blocking and is_blocking(command, tuple(args)))
            ):
                if grouped:
                    segments.append(grouped)
                    grouped, held = [], set()
                segments.append(index)
                continue
            if not plain_kind(info):
                self.checked.add(index)
            if info.subcommands and args:
                info = info.subcommand(args[0]) or info
            infos[index] = info if info.name else None
            slots[index] = slot
            if held and slot in held:
                self.ordered.add(len(segments))
            if _multi_key(info):
                self.barriers.add(index)
                held.add(slot)
            grouped.append(index)
        if grouped:
            segments.append(grouped)
