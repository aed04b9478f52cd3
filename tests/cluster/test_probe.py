"""MapProbe: which CLUSTER INFO answers call for a full slot map read (pure logic)."""

from __future__ import annotations

from dataclasses import replace

from clustermgr.cluster.probe import ClusterInfo, MapProbe

NODE = ("127.0.0.1", 7000)
OTHER = ("127.0.0.1", 7001)
HEALTHY = ClusterInfo(True, 6, 16384, 16384, 0, 0, 6, 3)

REPLY = (
    b"cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n"
    b"cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:6\r\n"
    b"cluster_size:3\r\ncluster_current_epoch:6\r\ncluster_my_epoch:2\r\n"
    b"cluster_stats_messages_sent:1234\r\n"
)


def test_parse_keeps_the_fields_that_move_with_the_map() -> None:
    assert ClusterInfo.parse(REPLY) == HEALTHY
    more = REPLY.replace(b"messages_sent:1234", b"messages_sent:99999")
    assert ClusterInfo.parse(more) == HEALTHY  # message counters are not news
    down = ClusterInfo.parse(REPLY.replace(b"cluster_state:ok", b"cluster_state:fail"))
    assert not down.state_ok


def _failover(probe: MapProbe, base: ClusterInfo, now: float = 0.0) -> list[bool]:
    """A master of 5461 slots fails and its replica is promoted, probed at each step."""
    k = 5461
    steps = [
        base,  # nothing yet
        replace(base, slots_ok=base.slots_ok - k, slots_pfail=base.slots_pfail + k),
        replace(base, slots_ok=base.slots_ok - k, slots_fail=base.slots_fail + k,
                state_ok=False),
        replace(base, slots_ok=base.slots_ok - k, slots_fail=base.slots_fail + k,
                state_ok=False, epoch=base.epoch + 1),  # the vote
        replace(base, epoch=base.epoch + 1),  # the promotion
    ]
    return [probe.worth_reading(NODE, info, now + 0.05 * i, 0) for i, info in enumerate(steps)]


def test_a_failover_is_read_once_at_the_promotion() -> None:
    probe = MapProbe()
    probe.note_read(NODE, HEALTHY)
    assert _failover(probe, HEALTHY) == [False, False, False, False, True]


def test_a_promotion_is_read_while_another_shard_stays_down() -> None:
    probe = MapProbe()
    down = replace(HEALTHY, slots_ok=16384 - 100, slots_fail=100, state_ok=False)
    probe.note_read(NODE, down)
    assert _failover(probe, down) == [False, False, False, False, True]


def test_a_promotion_is_read_when_the_other_shard_never_recovers() -> None:
    """One shard is lost for good (no replica) after the last read; another fails
    over later: its promotion leaves fewer slots ok than at the read, more than just before."""
    probe = MapProbe()
    probe.note_read(NODE, HEALTHY)
    lost = replace(HEALTHY, slots_ok=16384 - 100, slots_fail=100, state_ok=False)
    assert not probe.worth_reading(NODE, HEALTHY, 0.0, 0)
    assert not probe.worth_reading(NODE, lost, 0.05, 0)
    failing = replace(lost, slots_ok=lost.slots_ok - 5000, slots_fail=5100, epoch=7)
    assert not probe.worth_reading(NODE, failing, 0.10, 0)
    promoted = replace(lost, epoch=7)
    assert probe.worth_reading(NODE, promoted, 0.15, 0)


def test_unknown_or_unwatched_nodes_are_read() -> None:
    probe = MapProbe()
    assert probe.worth_reading(NODE, HEALTHY, 0.0, 0)  # never read: read it
    probe.note_read(NODE, HEALTHY)
    worse = replace(HEALTHY, slots_ok=100, slots_fail=16284, epoch=9)
    assert probe.worth_reading(NODE, worse, 10.0, 0)  # worse, not watched happening
    assert probe.worth_reading(OTHER, HEALTHY, 10.0, 0)  # another node: its own baseline
    probe.note_read(NODE, HEALTHY)
    probe.forget(NODE)
    assert probe.worth_reading(NODE, HEALTHY, 11.0, 0)


def test_a_node_never_read_at_the_maps_epoch_is_taken_as_read() -> None:
    probe = MapProbe()
    assert not probe.worth_reading(NODE, HEALTHY, 0.0, 6)  # no epoch moved since the map
    assert probe.worth_reading(OTHER, HEALTHY, 0.0, 5)  # newer than the map: read it
    assert probe.worth_reading(("10.0.0.9", 7000), HEALTHY, 0.0, None)  # not in the map
    assert probe.worth_reading(NODE, replace(HEALTHY, epoch=7), 0.05, 6)


def test_same_slots_ok_with_new_epoch_or_members_is_read() -> None:
    probe = MapProbe()
    probe.note_read(NODE, HEALTHY)
    assert probe.worth_reading(NODE, replace(HEALTHY, epoch=7), 0.0, 0)
    assert probe.worth_reading(NODE, replace(HEALTHY, known_nodes=7), 0.05, 0)
    assert not probe.worth_reading(NODE, HEALTHY, 0.1, 0)
