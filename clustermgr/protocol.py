"""The wire format: command encoding, the reply parser and reply decoding.

Commands are packed by hiredis in C; replies are parsed by ``hiredis.Reader``
into bytes and only decoded when the caller asked for an encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hiredis

from .errors import ProtocolError, RedirectError, ReplyError

__all__ = [
    "BLOCKING_COMMANDS",
    "PUSH_FRAME",
    "Reader",
    "case_variants",
    "decode",
    "encode_command",
    "excerpt",
    "is_blocking",
    "lookup_command",
    "new_reader",
    "to_text",
]

Reader = hiredis.Reader
#: The type hiredis gives a RESP3 push frame (``>``): a list subclass.
PUSH_FRAME: type = hiredis.PushNotification

_pack = hiredis.pack_command


def encode_command(command: bytes | str, args: tuple[Any, ...]) -> bytes:
    """Serialise ``command *args`` as a RESP array.

    Arguments may be bytes, bytearray, memoryview, str (UTF-8), int or float;
    anything else raises :class:`TypeError` naming the argument, before
    anything is sent.
    """
    try:
        packed: bytes = _pack((command, *args))
        return packed
    except TypeError:
        if any(type(arg) is bytearray for arg in args):  # the packer takes bytes only
            return encode_command(
                command, tuple(bytes(a) if type(a) is bytearray else a for a in args)
            )
        for position, arg in enumerate((command, *args)):
            if isinstance(arg, bool) or not isinstance(
                arg, (bytes, str, int, float, memoryview)
            ):
                accepted = (
                    "args must not contain None" if arg is None
                    else "commands take bytes, str, int or float"
                )
                raise TypeError(
                    f"argument {position} of {command!r} has type {type(arg).__name__}; {accepted}"
                ) from None
        raise


def new_reader(parser: Any = None, *, host: str | None = None) -> Any:
    """A RESP reader that raises clustermgr's typed errors.

    ``host`` is the host of the connection the reader serves: a redirect with
    an empty host (``MOVED 3999 :6380``) gets it, as Redis means.
    """
    factory = parser or Reader
    errors = ReplyError if host is None else _reply_errors_from(host)
    return factory(protocolError=ProtocolError, replyError=errors)


def _reply_errors_from(host: str) -> Callable[[str], ReplyError]:
    def make(msg: str) -> ReplyError:
        error = ReplyError(msg)
        if isinstance(error, RedirectError) and not error.host:
            error.host = host
        return error

    return make


def to_text(value: Any) -> str:
    """A name or flag from a reply as str (bytes decoded as UTF-8, lossy)."""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


def decode(obj: Any, encoding: str) -> Any:
    """Decode every bytes value in a reply (recursively) with ``encoding``."""
    kind = type(obj)
    if kind is bytes:
        return obj.decode(encoding)
    if kind is list:
        return [decode(item, encoding) for item in obj]
    return obj


def excerpt(obj: Any, limit: int = 1024) -> str:
    """A repr of ``obj`` cut to at most ``limit`` characters, cheap for huge or deep values.

    Never builds the whole repr: bytes and str are cut before repr, lists
    show their first items to a few levels.
    """
    text = _excerpt(obj, limit, 4)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _excerpt(obj: Any, limit: int, depth: int) -> str:
    if isinstance(obj, (bytes, bytearray, str)):
        if len(obj) <= limit:
            return repr(obj)
        return f"{obj[:limit]!r}... ({len(obj)} {'chars' if isinstance(obj, str) else 'bytes'})"
    if isinstance(obj, (list, tuple, dict)):
        if depth == 0:
            return f"[... {len(obj)} items]"
        items = obj.items() if isinstance(obj, dict) else obj
        parts: list[str] = []
        used = 2
        for item in items:
            part = _excerpt(item, limit - used, depth - 1)
            parts.append(part)
            used += len(part) + 2
            if used >= limit:
                parts.append(f"... {len(obj)} items")
                break
        return "[" + ", ".join(parts) + "]"
    if isinstance(obj, BaseException):  # an error reply: its message may be huge
        return f"{type(obj).__name__}({_excerpt(str(obj), limit, 0)})"
    text = repr(obj)
    return text if len(text) <= limit else text[:limit]


def case_variants(*names: str) -> dict[Any, bytes]:
    """A lookup table of command names in upper/lower case, as bytes and str.

    Values are the canonical upper-case bytes name. Use with
    :func:`lookup_command` so that checking a command costs one dict lookup.
    """
    table: dict[Any, bytes] = {}
    for name in names:
        for form in (name.upper(), name.lower()):
            table[form] = name.upper().encode()
            table[form.encode()] = name.upper().encode()
    return table


def lookup_command(table: dict[Any, bytes], command: Any) -> bytes | None:
    """The canonical name of ``command`` if it is in ``table`` (any case)."""
    found = table.get(command)
    if found is None and type(command) in (bytes, str) and not (
        command.isupper() or command.islower()
    ):
        found = table.get(command.upper())
    return found


BLOCKING_COMMANDS = case_variants(
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "WAIT", "WAITAOF", "XREAD", "XREADGROUP",
)
_STREAM_READS = frozenset({b"XREAD", b"XREADGROUP"})


def is_blocking(command: Any, args: tuple[Any, ...]) -> bool:
    """True for commands that may wait on the server (BLPOP, XREAD BLOCK, WAIT, ...)."""
    name = lookup_command(BLOCKING_COMMANDS, command)
    if name is None:
        return False
    if name in _STREAM_READS:
        return any(isinstance(a, (bytes, str)) and a.upper() in (b"BLOCK", "BLOCK") for a in args)
    return True
