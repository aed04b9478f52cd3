"""Parsing sentinel events and choosing a master from sentinel views (no servers)."""

from __future__ import annotations

import asyncio

from clustermgr.sentinel import parse_event
from clustermgr.sentinel.discovery import MasterView, choose_master
from clustermgr.sentinel.epochs import EpochGuard


def test_switch_master() -> None:
    event = parse_event(b"+switch-master", b"mymaster 127.0.0.1 6379 127.0.0.1 6380")
    assert event.master_name == "mymaster"
    assert event.master_address == ("127.0.0.1", 6379)
    assert event.address == ("127.0.0.1", 6380)


def test_instance_format_with_master() -> None:
    event = parse_event(
        "+failover-state-send-slaveof-noone",
        "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
    )
    assert event.is_failover_start
    assert event.instance_type == "slave"
    assert event.address == ("127.0.0.1", 6380)
    assert event.master_name == "mymaster"
    assert event.master_address == ("127.0.0.1", 6379)


def test_master_instance_and_abort() -> None:
    event = parse_event("+odown", "master mymaster 127.0.0.1 6379 #quorum 2/2")
    assert event.master_name == "mymaster" and event.address == ("127.0.0.1", 6379)
    abort = parse_event("-failover-abort-no-good-slave", "master mymaster 127.0.0.1 6379")
    assert abort.is_failover_abort and not abort.is_failover_start


def test_unknown_shape_is_kept() -> None:
    event = parse_event("+new-epoch", "7")
    assert event.master_name is None and event.payload == "7"


def _view(sentinel: int, port: int, epoch: int = 0, flags: str = "master") -> MasterView:
    return MasterView(("127.0.0.1", sentinel), ("127.0.0.1", port),
                      frozenset(flags.split(",")), epoch)


def test_majority_wins() -> None:
    views = [_view(1, 6379), _view(2, 6379), _view(3, 6380)]
    assert choose_master(views)[0] == ("127.0.0.1", 6379)


def test_newer_epoch_beats_majority() -> None:
    views = [_view(1, 6379, 1), _view(2, 6379, 1), _view(3, 6380, 2)]
    assert choose_master(views)[0] == ("127.0.0.1", 6380)


def test_sentinels_reporting_down_are_ignored() -> None:
    views = [_view(1, 6379, flags="master,s_down"), _view(2, 6380)]
    assert choose_master(views) == [("127.0.0.1", 6380)]
    assert choose_master([_view(1, 6379, flags="master,o_down")]) == []


async def test_stale_views_are_not_followed() -> None:
    """A master named under an older config epoch than one seen is ignored (for a while)."""
    guard = EpochGuard("mymaster", stale_grace=0.2)
    old, new = ("127.0.0.1", 1), ("127.0.0.1", 2)
    fresh_view = MasterView(("127.0.0.1", 9), new, frozenset({"master"}), 5)
    assert guard.fresh([new], [fresh_view]) == [new]
    assert guard.floor == 5
    # The new master is reported down and a lagging sentinel still names the old one.
    down_view = MasterView(("127.0.0.1", 9), new, frozenset({"master", "s_down"}), 5)
    stale_view = MasterView(("127.0.0.1", 8), old, frozenset({"master"}), 4)
    assert guard.fresh([old], [down_view, stale_view]) == []
    # A real later failover back to the old address carries a newer epoch.
    newer = MasterView(("127.0.0.1", 8), old, frozenset({"master"}), 6)
    assert guard.fresh([old], [newer]) == [old]
    assert guard.floor == 6
    # Sentinels reset (epochs start over): accepted after the grace period.
    reset = MasterView(("127.0.0.1", 8), new, frozenset({"master"}), 0)
    assert guard.fresh([new], [reset]) == []
    await asyncio.sleep(0.25)
    assert guard.fresh([new], [reset]) == [new]
    assert guard.floor == 0


async def test_a_deposed_master_is_stale_until_named_under_a_newer_epoch() -> None:
    """Once a failover away from a master was seen, views naming it under the epoch it
    had are stale, even when every sentinel still names it and none has a newer epoch."""
    guard = EpochGuard("mymaster", stale_grace=10.0)
    guard.floor = 3
    old = ("127.0.0.1", 1)
    view = MasterView(("127.0.0.1", 9), old, frozenset({"master"}), 3)
    assert guard.fresh([old], [view]) == [old]
    assert guard.depose(old) is True
    assert guard.depose(old) is False  # no news the second time
    assert guard.fresh([old], [view]) == []
    again = MasterView(("127.0.0.1", 9), old, frozenset({"master"}), 4)
    assert guard.fresh([old], [again]) == [old]
    guard.undepose(old)
    assert guard.deposed == {}


def test_a_view_of_a_master_being_failed_over_is_not_used() -> None:
    assert choose_master([_view(1, 6379, flags="master,failover_in_progress")]) == []
