"""The cluster SCAN cursor: packs (master, node cursor) and walks the masters in order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clustermgr.cluster.scancursor import next_cursor, split_cursor

_FIRSTS = st.lists(st.integers(0, 16383), min_size=1, max_size=8, unique=True).map(sorted)


@given(_FIRSTS, st.data(), st.integers(1, 2**64 - 1))
def test_a_node_cursor_comes_back_on_the_same_master(
    firsts: list[int], data: st.DataObject, node_cursor: int
) -> None:
    slot = data.draw(st.sampled_from(firsts))
    packed = next_cursor(str(node_cursor).encode(), slot, firsts)
    assert isinstance(packed, bytes)
    assert split_cursor(packed, firsts) == (node_cursor, slot)


@given(_FIRSTS)
def test_a_pass_visits_every_master_once_then_ends(firsts: list[int]) -> None:
    visited = []
    cursor: object = 0
    for _ in range(len(firsts) + 1):
        node_cursor, slot = split_cursor(cursor, firsts)
        assert node_cursor == 0
        visited.append(slot)
        cursor = next_cursor("0", slot, firsts)  # this master is done
        assert isinstance(cursor, str)
        if cursor == "0":
            break
    assert visited == firsts
