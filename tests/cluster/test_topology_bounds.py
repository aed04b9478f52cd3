"""A slot map whose ranges cover more slots than exist is refused before it is filled."""

from __future__ import annotations

import time

import pytest

from clustermgr.cluster.topology import parse_shards, parse_slots
from clustermgr.errors import ProtocolError

_NODE = [b"id", b"n1", b"port", 7000, b"ip", b"127.0.0.1", b"role", b"master",
         b"health", b"online"]


@pytest.mark.parametrize("bounds", [
    [0, 16383] * 100_000,  # the whole range, repeated
    [0, 8191, 8000, 16383],  # overlapping ranges: 16576 slots
    [5, 4] * 20_000,  # more (empty) ranges than slots
])
def test_shards_covering_more_than_every_slot_are_refused_quickly(bounds: list[int]) -> None:
    started = time.monotonic()
    with pytest.raises(ProtocolError, match="16384"):
        parse_shards([[b"slots", bounds, b"nodes", [_NODE]]])
    assert time.monotonic() - started < 0.5


def test_slots_covering_more_than_every_slot_are_refused_quickly() -> None:
    entry = [0, 16383, [b"127.0.0.1", 7000, b"n1"]]
    started = time.monotonic()
    with pytest.raises(ProtocolError, match="16384"):
        parse_slots([entry] * 100_000)
    assert time.monotonic() - started < 0.5


def test_a_full_map_in_many_ranges_is_accepted() -> None:
    bounds = [b for slot in range(16384) for b in (slot, slot)]
    slot_map = parse_shards([[b"slots", bounds, b"nodes", [_NODE]]])
    assert slot_map.shards[16383] is not None
