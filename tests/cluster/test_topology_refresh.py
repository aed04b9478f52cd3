"""Slot map parsing/diffing and the refresh engine (no server needed)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from clustermgr.cluster.refresh import RefreshEngine, RefreshOptions
from clustermgr.cluster.topology import diff_maps, parse_epoch, parse_shards, parse_slots


def _node(port: int, role: str, health: str = "online") -> list[object]:
    return [b"id", f"n{port}".encode(), b"port", port, b"ip", b"127.0.0.1",
            b"endpoint", b"127.0.0.1", b"role", role.encode(), b"replication-offset", 1,
            b"health", health.encode()]


SHARDS = [
    [b"slots", [0, 8191], b"nodes", [_node(7000, "master"), _node(7003, "replica")]],
    [b"slots", [8192, 16383], b"nodes", [_node(7001, "master"), _node(7004, "replica", "fail")]],
    [b"slots", [], b"nodes", [_node(7002, "master")]],
]


def test_parse_shards_builds_an_o1_slot_table() -> None:
    slot_map = parse_shards(SHARDS, epoch=7, source=("127.0.0.1", 7000))
    assert len(slot_map.shards) == 16384 and slot_map.covered == 16384
    first, last = slot_map.shards[0], slot_map.shards[16383]
    assert first is not None and last is not None
    assert first.master.address == ("127.0.0.1", 7000)
    assert [r.address[1] for r in first.healthy_replicas] == [7003]
    assert last.healthy_replicas == ()
    assert slot_map.shards[8191] is first and slot_map.shards[8192] is last
    assert slot_map.ranges() == [(0, 8191, ("127.0.0.1", 7000)), (8192, 16383, ("127.0.0.1", 7001))]
    assert slot_map.epoch == 7


def test_parse_slots_and_diff() -> None:
    reply = [[0, 16383, [b"127.0.0.1", 7000, b"id0"], [b"127.0.0.1", 7003, b"id3"]]]
    old = parse_slots(reply, epoch=3)
    new = parse_shards(SHARDS, epoch=4)
    diff = diff_maps(old, new)
    assert diff.added == {("127.0.0.1", 7001)} and not diff.removed
    assert diff.moved_slots == 8192
    assert diff_maps(old, new, replicas=True).added == {("127.0.0.1", 7001), ("127.0.0.1", 7004)}
    assert not diff_maps(new, new).changed


def test_parse_epoch() -> None:
    assert parse_epoch(b"cluster_state:ok\r\ncluster_current_epoch:12\r\n") == 12
    assert parse_epoch("nothing") == 0


async def test_refresh_engine_coalesces_and_rate_limits() -> None:
    calls: list[frozenset[str]] = []

    async def reload(reasons: frozenset[str]) -> None:
        calls.append(reasons)
        await asyncio.sleep(0.02)

    engine = RefreshEngine(reload, RefreshOptions(period=None, min_interval=0.05))
    engine.start()
    try:
        await asyncio.gather(*(engine.refresh(f"r{i % 3}") for i in range(50)))
        assert calls == [frozenset({"r0", "r1", "r2"})]  # 50 triggers, one reload
        loop = asyncio.get_running_loop()
        start = loop.time()
        await engine.refresh("again")
        assert loop.time() - start >= 0.04  # rate limited
        assert len(calls) == 2
    finally:
        await engine.close()


async def test_refresh_engine_survives_a_failed_reload() -> None:
    attempts = 0

    async def reload(reasons: frozenset[str]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("no node answered")

    engine = RefreshEngine(reload, RefreshOptions(period=0.05, min_interval=0.0))
    engine.start()
    try:
        await engine.refresh("first")
        await asyncio.sleep(0.2)  # periodic reloads keep going
        assert attempts >= 3
    finally:
        await engine.close()


async def test_urgent_reloads_run_at_the_hold_interval() -> None:
    """While a command is held (urgent triggers) the map is polled every
    ``hold_interval``; an urgent trigger also cuts short a rate-limit pause."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def reload(reasons: frozenset[str]) -> None:
        starts.append(loop.time())

    engine = RefreshEngine(
        reload, RefreshOptions(period=None, min_interval=5.0, hold_interval=0.05)
    )
    engine.start()
    try:
        await engine.refresh("first")
        pending = engine.trigger("moved")  # rate limited: 5 s away
        await asyncio.sleep(0.01)
        assert engine.trigger("held", urgent=True) is pending
        await asyncio.wait_for(pending, 1.0)
        for _ in range(3):
            await asyncio.wait_for(engine.refresh("held", urgent=True), 1.0)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert len(starts) == 5 and all(0.04 <= gap < 1.0 for gap in gaps), gaps
        waiting = engine.reloaded()  # asks for no reload
        await asyncio.sleep(0.2)
        assert not waiting.done() and len(starts) == 5
    finally:
        await engine.close()


def test_hold_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="hold_interval"):
        RefreshOptions(hold_interval=0)


async def test_refresh_engine_hurried_polls_at_the_rate_limit_then_stops() -> None:
    """After a node stalled, the map is reloaded every min_interval for the time
    asked, then only on triggers again (period None: never on its own)."""
    calls: list[frozenset[str]] = []

    async def reload(reasons: frozenset[str]) -> None:
        calls.append(reasons)

    engine = RefreshEngine(reload, RefreshOptions(period=None, min_interval=0.05))
    engine.start()
    try:
        engine.hurry(0.5)
        await asyncio.sleep(0.6)
        polled = len(calls)
        assert 6 <= polled <= 12, polled
        assert all(reasons == frozenset({"node stalled"}) for reasons in calls)
        await asyncio.sleep(0.3)
        assert len(calls) <= polled + 1  # the poll ended with its time
    finally:
        await engine.close()


async def test_only_urgent_triggers_run_the_cheaper_poll() -> None:
    calls: list[str] = []

    async def reload(reasons: frozenset[str]) -> None:
        calls.append("reload")

    async def poll(reasons: frozenset[str]) -> None:
        calls.append("poll")

    engine = RefreshEngine(reload, RefreshOptions(period=None, min_interval=0.01), poll=poll)
    engine.start()
    try:
        await asyncio.wait_for(engine.refresh("held", urgent=True), 1.0)
        engine.trigger("held", urgent=True)
        await asyncio.wait_for(engine.refresh("moved"), 1.0)  # one routine trigger: full
        await asyncio.wait_for(engine.refresh("held", urgent=True), 1.0)
        assert calls == ["poll", "reload", "poll"]
    finally:
        await engine.close()


def test_parse_shards_picks_the_master_of_highest_config_epoch_in_a_shard() -> None:
    """Valkey 8 (shard ids) lists a dead master that lost a TAKEOVER in its old
    shard, first, still ``online`` until it is flagged FAIL, beside the promoted
    replica: the owner of the slots is the master of highest config epoch."""
    shards = [[b"slots", [0, 16383], b"nodes", [_node(7000, "master"), _node(7003, "master")]]]
    epochs = {"n7000": 1, "n7003": 6}
    for source in (("127.0.0.1", 7001), ("127.0.0.1", 7000)):
        view = parse_shards(shards, epoch=6, source=source, config_epochs=epochs)
        owner = view.shards[0]
        assert owner is not None and owner.master.address == ("127.0.0.1", 7003)
        assert owner.master.config_epoch == 6 and owner.replicas == ()
    failed = [[b"slots", [0, 16383], b"nodes", [_node(7000, "master"),
                                                _node(7003, "master", "failed")]]]
    owner = parse_shards(failed, source=("127.0.0.1", 7001), config_epochs=epochs).shards[0]
    assert owner is not None and owner.master.address == ("127.0.0.1", 7003)


def test_parse_shards_without_config_epochs_prefers_online_then_the_answering_master() -> None:
    """Epochs unknown (``CLUSTER NODES`` refused): an online master over a failed
    one, then the master that answered (it knows it owns the slots)."""
    both = [_node(7000, "master"), _node(7003, "master")]
    shards = [[b"slots", [0, 16383], b"nodes", both]]
    owner = parse_shards(shards, source=("127.0.0.1", 7003)).shards[0]
    assert owner is not None and owner.master.address == ("127.0.0.1", 7003)
    failed = [[b"slots", [0, 16383], b"nodes", [_node(7003, "master", "failed"),
                                                _node(7000, "master")]]]
    owner = parse_shards(failed, source=("127.0.0.1", 7003)).shards[0]
    assert owner is not None and owner.master.address == ("127.0.0.1", 7000)
