"""Pure unit tests of the routing core: the error-to-action table, the budget, the Backoff."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clustermgr.backoff import Backoff
from clustermgr.cluster import ClusterPool
from clustermgr.errors import (
    AskError,
    ClusterDownError,
    ConnectError,
    ConnectionClosedError,
    ConnectionForcedCloseError,
    LoadingError,
    MovedError,
    OutcomeUnknownError,
    PoolClosedError,
    ReadOnlyError,
    RedisError,
    ReplyError,
    TryAgainError,
    WrongTypeError,
)
from clustermgr.routing import Action, Budget, ErrorActions
from clustermgr.sentinel import SentinelPool
from clustermgr.sentinel.errors import RoleMismatchError


def test_table_resolves_along_the_mro_and_defaults_to_fail() -> None:
    table = ErrorActions({ConnectionClosedError: Action.REFRESH, RedisError: Action.BACKOFF})
    assert table.of_type(ConnectionForcedCloseError) is Action.REFRESH  # nearest base wins
    assert table.of_type(WrongTypeError) is Action.BACKOFF
    assert table.of_type(ValueError) is Action.FAIL
    assert table.of_type(ConnectionForcedCloseError) is Action.REFRESH  # cached, same answer


def test_unknown_outcome_is_refused_unless_read_only() -> None:
    table = ErrorActions({ConnectionClosedError: Action.REFRESH_LATER})
    sent = ConnectionClosedError("lost", may_have_executed=True)
    unsent = ConnectionClosedError("lost", may_have_executed=False)
    assert table.action(sent, readonly=False) is Action.REFUSE
    assert table.action(sent, readonly=True) is Action.REFRESH_LATER
    assert table.action(unsent, readonly=False) is Action.REFRESH_LATER
    # An error the table does not retry stays FAIL, whatever its outcome.
    assert ErrorActions({}).action(sent, readonly=False) is Action.FAIL


def test_with_entries_overrides_without_touching_the_original() -> None:
    base = ErrorActions({ReadOnlyError: Action.REFRESH})
    replica = base.with_entries({ReadOnlyError: Action.FAIL})
    assert base.of_type(ReadOnlyError) is Action.REFRESH
    assert replica.of_type(ReadOnlyError) is Action.FAIL
    assert replica.retryable() == ()
    assert base.retryable() == (ReadOnlyError,)


def test_cluster_table() -> None:
    table = ClusterPool._actions
    moved, ask = ReplyError("MOVED 1 127.0.0.1:7000"), ReplyError("ASK 1 127.0.0.1:7000")
    assert isinstance(moved, MovedError) and isinstance(ask, AskError)
    assert table.action(moved, readonly=False) is Action.MOVED
    assert table.action(ask, readonly=False) is Action.ASK
    for kind in (TryAgainError, LoadingError):
        assert table.of_type(kind) is Action.BACKOFF
    assert table.of_type(ClusterDownError) is Action.REFRESH_LATER
    assert table.of_type(ReadOnlyError) is Action.REFRESH
    for kind in (ConnectionClosedError, ConnectError, PoolClosedError):
        assert table.of_type(kind) is Action.REFRESH_LATER
    assert table.action(OutcomeUnknownError("?"), readonly=False) is Action.REFUSE
    assert table.of_type(WrongTypeError) is Action.FAIL


def test_sentinel_table() -> None:
    table = SentinelPool._actions
    for kind in (ReadOnlyError, ConnectionClosedError, ConnectError, RoleMismatchError,
                 PoolClosedError):
        assert table.of_type(kind) is Action.REFRESH
    assert table.of_type(MovedError) is Action.FAIL
    assert table.of_type(WrongTypeError) is Action.FAIL


def test_budget() -> None:
    budget = Budget(100.0, 5.0, max_failures=2, max_redirects=1)
    assert budget.spent(100.0) is None and budget.remaining(101.0) == 4.0
    budget.redirects = 2
    assert budget.spent(100.0) == "2 redirects"
    budget.redirects, budget.failures = 0, 3
    assert budget.spent(100.0) == "3 failed attempts"
    budget.failures = 0
    assert budget.spent(105.0) is not None and budget.remaining(200.0) == 0.0
    endless = Budget(0.0, None, None, None)
    assert endless.spent(1e9) is None and endless.remaining(1e9) is None


def test_an_ask_whose_node_does_not_answer_is_not_counted_as_a_redirect() -> None:
    budget = Budget(0.0, 10.0, max_failures=None, max_redirects=1)
    ask = ReplyError("ASK 7 127.0.0.1:7001")
    for _ in range(5):  # source answers ASK, its target does not answer, held, again
        budget.redirects += 1
        budget.ask_unreached(ask)
    assert budget.spent(1.0) is None and budget.held_ask is ask
    assert budget.spent(10.0) is not None  # the deadline still bounds it


@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_backoff_delay_stays_within_jittered_exponential_bounds(attempt: int, u: float) -> None:
    backoff = Backoff(base=0.01, cap=0.5, jitter=0.5)
    ceiling = min(0.5, 0.01 * 2 ** min(attempt, 32))
    delay = backoff.delay(attempt, uniform=lambda lo, hi: lo + (hi - lo) * u)
    assert ceiling * 0.5 - 1e-12 <= delay <= ceiling + 1e-12


def test_backoff_doubles_then_caps() -> None:
    backoff = Backoff(base=0.01, cap=0.08, jitter=1.0)  # jitter 1: no randomness
    assert [backoff.delay(n) for n in range(6)] == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]


@pytest.mark.parametrize(
    "kwargs", [{"base": 0}, {"base": -1}, {"base": 1, "cap": 0.5}, {"jitter": 1.5},
               {"jitter": -0.1}],
)
def test_backoff_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_backoff_rejects_negative_attempts() -> None:
    with pytest.raises(ValueError):
        Backoff().delay(-1)


async def test_backoff_sleep_never_exceeds_the_limit() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await Backoff(base=5.0, cap=5.0, jitter=1.0).sleep(3, limit=0.01)
    assert loop.time() - start < 1.0
