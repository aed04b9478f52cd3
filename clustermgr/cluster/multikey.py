"""Commands that touch several slots or several nodes: split, fan out, merge.

* :func:`split_by_slot` cuts MGET/MSET/DEL/UNLINK/EXISTS/TOUCH into one call
  per slot; :func:`merge_split` puts the replies back in the caller's order.
  The split call is **not atomic**: each part succeeds or fails on its own.
* :func:`merge_fanout` combines the replies of a keyless command sent to
  every master (``request_policy:all_shards``) per its ``response_policy``.
* :func:`pubsub_merge` says how PUBSUB CHANNELS / NUMSUB / NUMPAT, asked of
  every master, are combined (each node only knows its own subscribers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..slots import KeyT, key_slot

__all__ = ["merge_fanout", "merge_split", "pubsub_merge", "split_by_slot"]

Part = tuple[int, list[Any], list[int]]  # slot, args of the part, key positions


def split_by_slot(args: Sequence[Any], first: int, step: int) -> list[Part]:
    """Group ``args`` (keys at ``first::step``, each followed by ``step - 1`` values).

    Returns ``(slot, part_args, positions)`` per slot, in order of first
    appearance; ``positions`` are the indices of the part's keys among all keys.
    """
    head = list(args[:first])
    parts: dict[int, Part] = {}
    for index, start in enumerate(range(first, len(args), step)):
        key: KeyT = args[start]
        slot = key_slot(key)
        part = parts.get(slot)
        if part is None:
            part = parts[slot] = (slot, list(head), [])
        part[1].extend(args[start : start + step])
        part[2].append(index)
    return list(parts.values())


def merge_split(name: str, parts: list[Part], replies: list[Any], key_count: int) -> Any:
    """Merge the replies of the parts of a split command."""
    if name == "mget":
        values: list[Any] = [None] * key_count
        for (_slot, _args, positions), reply in zip(parts, replies, strict=True):
            for position, value in zip(positions, reply, strict=True):
                values[position] = value
        return values
    if name == "mset":
        return replies[0]
    return sum(int(r) for r in replies)  # DEL, UNLINK, EXISTS, TOUCH: counts


def merge_fanout(policy: str | None, replies: list[Any]) -> Any:
    """Combine per-master replies following the command's ``response_policy`` tip."""
    if policy == "agg_sum":
        return sum(int(r) for r in replies)
    if policy == "agg_min":
        return min(replies)
    if policy == "agg_max":
        return max(replies)
    if policy == "agg_logical_and":
        return _logical(replies, all)
    if policy == "agg_logical_or":
        return _logical(replies, any)
    if policy in ("all_succeeded", "one_succeeded") or not replies:
        return replies[0] if replies else None
    if all(isinstance(r, list) for r in replies):  # KEYS and friends: concatenate
        merged: list[Any] = []
        for reply in replies:
            merged.extend(reply)
        return merged
    return replies[0]


def _logical(replies: list[Any], combine: Any) -> Any:
    if all(isinstance(r, list) for r in replies):  # SCRIPT EXISTS: element-wise
        return [int(combine(col)) for col in zip(*replies, strict=True)]
    return int(combine(replies))


def _union(replies: list[Any]) -> list[Any]:
    """PUBSUB CHANNELS: every node's channels, each once, in order of first appearance."""
    return list(dict.fromkeys(name for reply in replies for name in reply))


def _numsub(replies: list[Any]) -> list[Any]:
    """PUBSUB NUMSUB: ``[channel, count, ...]`` in request order, counts summed."""
    merged = list(replies[0])
    for i in range(1, len(merged), 2):
        merged[i] = sum(int(reply[i]) for reply in replies)
    return merged


def _sum(replies: list[Any]) -> int:
    return sum(int(r) for r in replies)


_PUBSUB_MERGES: dict[bytes, Callable[[list[Any]], Any]] = {
    b"CHANNELS": _union, b"NUMSUB": _numsub, b"NUMPAT": _sum,
}


def pubsub_merge(subcommand: Any) -> Callable[[list[Any]], Any] | None:
    """How the per-master replies of ``PUBSUB <subcommand>`` combine, or None
    for a subcommand that is not asked of every master."""
    if isinstance(subcommand, str):
        subcommand = subcommand.encode()
    if not isinstance(subcommand, (bytes, bytearray)):
        return None
    return _PUBSUB_MERGES.get(bytes(subcommand).upper())
