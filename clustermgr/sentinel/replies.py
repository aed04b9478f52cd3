"""Sentinels' replies read strictly: a wrong shape is a :class:`ProtocolError`
naming the sentinel, never an ``IndexError`` or a wrong address.

Ports must be decimal digits in 1..65535 (``int()`` alone would take
``" 5"``, ``"+5"`` or ``"5_0"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import ProtocolError
from ..protocol import excerpt, to_text
from ._common import Address, address_text

__all__ = ["address_reply", "malformed", "pairs_to_dict", "port_text", "reply_dict",
           "reply_dicts"]

_PORT = re.compile(r"[0-9]{1,5}")


def malformed(source: Address, what: str, reply: Any) -> ProtocolError:
    """The error for a ``what`` of the wrong shape from ``source`` (excerpt ≤ 1 KiB)."""
    return ProtocolError(
        f"sentinel {address_text(source)} sent a malformed {what}: {excerpt(reply, 256)}"
    )


def port_text(value: Any) -> int:
    """A port named in a reply (bytes or str of decimal digits) as int; ValueError if not."""
    text = value.decode("ascii", "replace") if isinstance(value, (bytes, bytearray)) else value
    if not isinstance(text, str) or not _PORT.fullmatch(text) or not 0 < int(text) < 65536:
        raise ValueError(f"not a port: {excerpt(value, 64)}")
    return int(text)


def pairs_to_dict(reply: Sequence[Any]) -> dict[str, str]:
    """``[k1, v1, k2, v2, ...]`` (bytes or str) to ``{k1: v1, ...}`` as str."""
    items = [to_text(x) for x in reply]
    return dict(zip(items[::2], items[1::2], strict=False))


def reply_dict(reply: Any, source: Address) -> dict[str, str]:
    """One ``[k1, v1, ...]`` array from ``source`` as a dict; another shape is a
    :class:`ProtocolError` naming the sentinel."""
    if not isinstance(reply, list):
        raise malformed(source, "reply", reply)
    return pairs_to_dict(reply)


def reply_dicts(reply: Any, source: Address) -> list[dict[str, str]]:
    """An array of ``[k1, v1, ...]`` arrays (a listing from ``source``) as dicts.

    Any other shape raises :class:`ProtocolError` naming the sentinel.
    """
    if not isinstance(reply, list) or not all(isinstance(item, list) for item in reply):
        raise malformed(source, "listing", reply)
    return [pairs_to_dict(item) for item in reply]


def address_reply(reply: Any, source: Address) -> Address | None:
    """A ``GET-MASTER-ADDR-BY-NAME`` reply from ``source``: ``(host, port)``, None for nil.

    Anything but nil or ``[host, port]`` (two strings, a valid port) raises
    :class:`ProtocolError` naming the sentinel.
    """
    if reply is None:
        return None
    if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[0], (bytes, str)):
        try:
            return (to_text(reply[0]), port_text(reply[1]))
        except ValueError:
            pass
    raise malformed(source, "master address", reply)
