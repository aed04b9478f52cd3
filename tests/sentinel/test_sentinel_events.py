"""Parsing sentinel events and choosing a master from sentinel views (no servers)."""

from __future__ import annotations

from clustermgr.sentinel import parse_event
from clustermgr.sentinel.discovery import MasterView, choose_master


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
