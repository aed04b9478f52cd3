"""BatchPlan alone: a batch checked and cut into segments, no server involved."""

from __future__ import annotations

from typing import Any

import pytest

from clustermgr.commands import CommandTable
from clustermgr.routing.batchplan import BatchPlan
from clustermgr.slots import key_slot

_TABLE = CommandTable.builtin()


def _plan(commands: Any, **kwargs: Any) -> BatchPlan:
    return BatchPlan(commands, kwargs, _TABLE.lookup, lambda info: True)


def test_keyless_and_blocking_commands_are_segments_of_their_own() -> None:
    plan = _plan([
        ("SET", "a", 1), ("GET", "b"), ("PING",), ("SET", "c", 2),
        ("BLPOP", "d", 1), ("GET", "a"),
    ])
    assert plan.segments == [[0, 1], 2, [3], 4, [5]]
    assert plan.slots[0] == key_slot(b"a") and plan.slots[3] == key_slot(b"c")
    assert plan.ordered == set() and plan.barriers == set()


def test_a_key_after_a_multi_key_command_of_its_slot_orders_the_segment() -> None:
    plan = _plan([
        ("GET", "x"), ("MSET", "{t}1", 1, "{t}2", 2), ("GET", "{t}1"), ("PING",),
        ("MSET", "{u}1", 1, "{u}2", 2),
    ])
    assert plan.segments == [[0, 1, 2], 3, [4]]
    assert plan.barriers == {1, 4}
    assert plan.ordered == {0}  # segment 0 names slot {t} after its MSET; segment 2 does not


def test_unknown_commands_go_through_the_checked_entry_point() -> None:
    plan = BatchPlan([("GET", "a"), ("SET", "b", 1)], {}, _TABLE.lookup,
                     lambda info: info.name != "set")
    assert plan.checked == {1}


@pytest.mark.parametrize(("commands", "kwargs", "error"), [
    ("GET a", {}, TypeError),
    ([("GET", "a"), "GET b"], {}, TypeError),
    ([("GET", "a"), ("SET", "b", None)], {}, TypeError),
    ([("GET", "a"), ("SELECT", 1)], {}, TypeError),
    ([("GET", "a"), ("SET", "b", "\udcff")], {}, ValueError),
    ([("GET", "a")], {"encoding": "no-such-codec"}, LookupError),
    ([("GET", "a")], {"timeout": 1}, TypeError),
])
def test_bad_input_anywhere_raises(commands: Any, kwargs: dict[str, Any],
                                   error: type[Exception]) -> None:
    with pytest.raises(error):
        _plan(commands, **kwargs)
