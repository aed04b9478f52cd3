"""The cursor of a SCAN sent to a cluster pool: which master, and where on it.

A caller's ``SCAN cursor`` loop (aioredis' ``Redis.scan``/``iscan``) goes to
one master per call. The cursor it gets back packs the master -- named by the
lowest slot it owns -- and that master's own cursor: ``cursor * 16384 +
slot``. When a master's scan ends, the cursor names the next master (its
lowest slot, cursor 0); after the last master it is 0, ending the loop.
Masters are visited in the order of their lowest slot. This is SCAN's own
guarantee per master; for keys that move between masters during the pass,
:meth:`ClusterPool.iscan` yields each key exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..slots import SLOT_COUNT

__all__ = ["next_cursor", "split_cursor"]


def split_cursor(cursor: Any, firsts: Sequence[int]) -> tuple[int, int]:
    """``(node cursor, slot)`` a caller's cursor stands for; ``firsts``: each master's lowest
    slot, sorted (cursor 0 starts at the first master)."""
    value = int(cursor)
    if value < 0:
        raise ValueError(f"SCAN cursor must not be negative, got {cursor!r}")
    if value == 0:
        return 0, firsts[0]
    node_cursor, slot = divmod(value, SLOT_COUNT)
    return node_cursor, slot


def next_cursor(reply_cursor: Any, slot: int, firsts: Sequence[int]) -> Any:
    """The cursor to hand back for a node's SCAN reply cursor, typed like it."""
    node_cursor = int(reply_cursor)
    if node_cursor:
        value = node_cursor * SLOT_COUNT + slot
    else:
        value = next((first for first in firsts if first > slot), 0)
    text = str(value)
    return text.encode() if isinstance(reply_cursor, bytes) else text
