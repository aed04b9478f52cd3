"""Commands a cluster pool sends to several nodes, each part routed like ``execute``.

* :func:`fan_out`: a keyless command for every master (``request_policy``
  ``all_shards``/``all_nodes``: FLUSHALL, DBSIZE, ...), each part routed by
  one slot of its master's shard, replies merged by the response policy;
* :func:`split_across_slots`: MGET/MSET/DEL/... whose keys span slots, one
  part per slot, merged in the caller's order (not atomic);
* :func:`scan_one_master`: ``SCAN cursor``, the cursor naming which master
  (:mod:`.scancursor`), so a plain SCAN loop visits every master in turn.

Each part goes through ``send(command, args, kwargs, info, slot)``: the pool's
routed send, with its retries, redirects and budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..commands import CommandInfo
from ..errors import RouteError
from .multikey import merge_fanout, merge_split, split_by_slot
from .scancursor import next_cursor, split_cursor
from .topology import Address, SlotMap

__all__ = ["SendToSlot", "fan_out", "master_first_slots", "scan_one_master",
           "split_across_slots"]

#: ``send(command, args, kwargs, info, slot)``: one routed attempt chain.
SendToSlot = Callable[
    [bytes | str, tuple[Any, ...], dict[str, Any], CommandInfo | None, int], Awaitable[Any]
]


def master_first_slots(current: SlotMap | None) -> list[int]:
    """Each master's lowest slot, sorted (one slot to route each master by)."""
    firsts: dict[Address, int] = {}
    for slot, shard in enumerate(current.shards if current is not None else ()):
        if shard is not None:
            firsts.setdefault(shard.master.address, slot)
    return sorted(firsts.values())


async def fan_out(
    send: SendToSlot, current: SlotMap | None, command: bytes | str, args: tuple[Any, ...],
    kwargs: dict[str, Any], info: CommandInfo | None, name: str,
    merge: Callable[[list[Any]], Any] | None = None,
) -> Any:
    """``command`` on every master of ``current``, replies combined by ``merge``
    (else by the command's response policy)."""
    slots = master_first_slots(current)
    if not slots:
        raise RouteError(f"{name}: no master is known")
    replies = list(await asyncio.gather(*(send(command, args, kwargs, info, s) for s in slots)))
    if merge is not None:
        return merge(replies)
    return merge_fanout(info.response_policy if info is not None else None, replies)


async def split_across_slots(
    send: SendToSlot, info: CommandInfo, command: bytes | str, args: tuple[Any, ...],
    kwargs: dict[str, Any], layout: tuple[int, int],
) -> Any:
    """A multi-key command split per slot (``layout``: first key index, step)."""
    first, step = layout
    parts = split_by_slot(args, first, step)
    replies = await asyncio.gather(*(
        send(command, tuple(part_args), kwargs, info, slot) for slot, part_args, _p in parts
    ))
    return merge_split(info.name, parts, list(replies), len(range(first, len(args), step)))


async def scan_one_master(
    send: SendToSlot, current: SlotMap | None, info: CommandInfo, args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``SCAN cursor ...`` on the master the cursor names (see :mod:`.scancursor`)."""
    firsts = master_first_slots(current)
    if not firsts:
        raise RouteError("SCAN: no master is known")
    node_cursor, slot = split_cursor(args[0] if args else 0, firsts)
    reply_cursor, keys = await send(b"SCAN", (node_cursor, *args[1:]), kwargs, info, slot)
    return [next_cursor(reply_cursor, slot, firsts), keys]
