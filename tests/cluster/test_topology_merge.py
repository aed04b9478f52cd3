"""merge_views: slot owners settled by config epoch across views (no server needed).

The properties a pool relies on: the result depends only on the set of views,
merging again with the same views changes nothing (no alternation between
reloads), and no view can move a slot to an owner of lower config epoch than
the map in use gives it.
"""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from clustermgr.cluster.topology import (
    NodeInfo,
    Shard,
    SlotMap,
    merge_views,
    parse_config_epochs,
    parse_shards,
)
from clustermgr.slots import SLOT_COUNT

NODES_TEXT = """\
aaa 127.0.0.1:7000@17000 myself,master - 0 0 5 connected 0-8191
bbb 127.0.0.1:7001@17001 master - 0 1 2 connected 8192-16383
ccc 127.0.0.1:7002@17002 slave aaa 0 1 5 connected
ddd 127.0.0.1:7003@17003 master,fail - 0 1 9 disconnected
"""


def _master(port: int, epoch: int) -> NodeInfo:
    return NodeInfo(("127.0.0.1", port), node_id=f"n{port}", config_epoch=epoch)


def _replica(port: int) -> NodeInfo:
    return NodeInfo(("127.0.0.1", port), node_id=f"n{port}", role="replica")


def _view(source: int, owners: list[tuple[int, int, int, NodeInfo]], epoch: int = 1) -> SlotMap:
    """A view from ``127.0.0.1:source``: ``(first, last, replica port, master)`` runs."""
    slots: list[Shard | None] = [None] * SLOT_COUNT
    nodes: list[NodeInfo] = []
    for first, last, replica, master in owners:
        shard = Shard(master, (_replica(replica),))
        nodes += [master, *shard.replicas]
        slots[first : last + 1] = [shard] * (last - first + 1)
    return SlotMap(tuple(slots), epoch, ("127.0.0.1", source), tuple(nodes))


def _owners(slot_map: SlotMap) -> list[tuple[int, int] | None]:
    return [
        None if s is None else (s.master.address[1], s.master.config_epoch)
        for s in slot_map.shards
    ]


def test_parse_config_epochs_takes_masters_only() -> None:
    assert parse_config_epochs(NODES_TEXT) == {"aaa": 5, "bbb": 2, "ddd": 9}


def test_parse_shards_fills_config_epochs_by_node_id() -> None:
    node = [b"id", b"n1", b"port", 7000, b"ip", b"127.0.0.1", b"role", b"master",
            b"health", b"online"]
    reply = [[b"slots", [0, 16383], b"nodes", [node]]]
    slot_map = parse_shards(reply, config_epochs={"n1": 4})
    assert slot_map.shards[0] is not None and slot_map.shards[0].master.config_epoch == 4


def test_stale_view_with_higher_current_epoch_loses_to_higher_config_epoch() -> None:
    # After a failover: 7001 (promoted, config epoch 7) in the fresh view; a
    # voter that has not learnt it yet still names 7000 (epoch 2) and has a
    # higher current epoch.
    fresh = _view(7001, [(0, 16383, 7000, _master(7001, 7))], epoch=7)
    stale = _view(7002, [(0, 16383, 7001, _master(7000, 2))], epoch=9)
    merged = merge_views(None, [stale, fresh])
    assert merged.ranges() == [(0, 16383, ("127.0.0.1", 7001))]
    # The map in use wins against a stale view alone too.
    assert merge_views(merged, [stale]).ranges() == [(0, 16383, ("127.0.0.1", 7001))]
    first = merged.shards[0]
    assert first is not None and [r.address[1] for r in first.replicas] == [7000]


def test_equal_epochs_prefer_the_owners_own_view_then_the_lowest_address() -> None:
    a = _view(7000, [(0, 99, 7005, _master(7000, 3))])
    b = _view(7009, [(0, 99, 7005, _master(7001, 3))])
    assert merge_views(None, [a, b]).ranges()[0][2] == ("127.0.0.1", 7000)
    c = _view(7001, [(0, 99, 7005, _master(7001, 3))])
    d = _view(7009, [(0, 99, 7005, _master(7000, 3))])
    assert merge_views(None, [c, d]).ranges()[0][2] == ("127.0.0.1", 7001)


def test_current_owner_unknown_to_every_view_is_dropped() -> None:
    # e.g. the cluster was reset: the old owner's epoch no longer pins the slot.
    old = _view(7000, [(0, 16383, 7005, _master(7000, 9))])
    new = _view(7100, [(0, 16383, 7105, _master(7100, 1))])
    assert merge_views(old, [new]).ranges() == [(0, 16383, ("127.0.0.1", 7100))]


def test_a_run_split_by_another_view_keeps_one_shard_object_per_owner() -> None:
    a = _view(7000, [(0, 16383, 7005, _master(7000, 3))])
    b = _view(7001, [(100, 199, 7006, _master(7001, 5))])
    merged = merge_views(None, [a, b])
    assert merged.shards[0] is merged.shards[16383] is merged.shards[99]
    assert merged.ranges() == [
        (0, 99, ("127.0.0.1", 7000)), (100, 199, ("127.0.0.1", 7001)),
        (200, 16383, ("127.0.0.1", 7000)),
    ]


# -- properties -----------------------------------------------------------------

_BOUNDS = st.lists(st.integers(1, SLOT_COUNT - 1), max_size=4, unique=True).map(sorted)
_OWNER = st.tuples(st.integers(7000, 7004), st.integers(0, 6))  # port, config epoch


@st.composite
def _views(draw: st.DrawFn) -> list[SlotMap]:
    sources = draw(st.lists(st.integers(7000, 7009), min_size=1, max_size=4, unique=True))
    views = []
    for source in sources:
        cuts = [0, *draw(_BOUNDS), SLOT_COUNT]
        runs = []
        for first, end in itertools.pairwise(cuts):
            owner = draw(st.none() | _OWNER)
            if owner is not None:
                runs.append((first, end - 1, owner[0] + 10, _master(*owner)))
        views.append(_view(source, runs, epoch=draw(st.integers(0, 9))))
    return views


@settings(max_examples=60, deadline=None)
@given(_views(), st.none() | _views(), st.randoms())
def test_merge_is_order_independent(
    views: list[SlotMap], earlier: list[SlotMap] | None, rnd: random.Random
) -> None:
    current = merge_views(None, earlier) if earlier else None
    shuffled = list(views)
    rnd.shuffle(shuffled)
    assert merge_views(current, views) == merge_views(current, shuffled)


@settings(max_examples=60, deadline=None)
@given(_views(), _views())
def test_merge_is_idempotent(earlier: list[SlotMap], views: list[SlotMap]) -> None:
    once = merge_views(merge_views(None, earlier), views)
    assert merge_views(once, views) == once


@settings(max_examples=60, deadline=None)
@given(_views(), _views())
def test_merge_never_lowers_a_known_owners_config_epoch(
    earlier: list[SlotMap], views: list[SlotMap]
) -> None:
    current = merge_views(None, earlier)
    merged = merge_views(current, views)
    known = {n.node_id for v in views for n in v.nodes}
    for before, after in zip(current.shards, merged.shards, strict=True):
        if before is not None and before.master.node_id in known:
            assert after is not None
            assert after.master.config_epoch >= before.master.config_epoch
