"""judge(): the one decision on a returned connection, as a pure function."""

from __future__ import annotations

from clustermgr.handback import Action, ConnectionState, KnownState, judge

CLEAN = ConnectionState(
    closed=False, tracked=True, in_flight=0, blocking=0, subscribed=False,
    in_transaction=False, watching=False, db=0, readonly=False,
)
KNOWN = KnownState()


def test_clean_connection_is_shared_again() -> None:
    assert judge(CLEAN, KNOWN).action is Action.CLEAN


def test_reset_undoes_multi_then_watch_then_db_in_that_order() -> None:
    state = CLEAN._replace(in_transaction=True, watching=True, db=3, in_flight=2)
    verdict = judge(state, KNOWN)
    assert verdict.action is Action.RESET
    assert verdict.commands == ((b"DISCARD",), (b"UNWATCH",), (b"SELECT", 0))


def test_pending_replies_alone_are_waited_for() -> None:
    verdict = judge(CLEAN._replace(in_flight=1), KNOWN)
    assert verdict.action is Action.RESET and verdict.commands == ((b"PING",),)


def test_readonly_mode_and_credentials_are_restored() -> None:
    known = KnownState(readonly=True, credentials=("app", "pw"))
    verdict = judge(CLEAN._replace(credentials=("app", "old")), known)
    assert verdict.commands == ((b"AUTH", "app", "pw"), (b"READONLY",))
    assert "pw" not in repr(verdict)
    assert "old" not in repr(CLEAN._replace(credentials=("app", "old")))


def test_states_that_cannot_be_reset_close() -> None:
    for state in (
        CLEAN._replace(closed=True),
        CLEAN._replace(subscribed=True),
        CLEAN._replace(blocking=1, in_flight=1),
        CLEAN._replace(tracked=False),
        CLEAN._replace(credentials=(None, "pw")),  # the pool has no password to go back to
    ):
        assert judge(state, KNOWN).action is Action.CLOSE, state
