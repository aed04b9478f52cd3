"""Typed errors: reply-prefix dispatch, redirects, may_have_executed."""

from __future__ import annotations

import asyncio

import pytest

from clustermgr import errors


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("WRONGTYPE Operation against a key", errors.WrongTypeError),
        ("NOAUTH Authentication required.", errors.AuthError),
        ("WRONGPASS invalid username-password pair", errors.AuthError),
        ("ERR invalid password", errors.AuthError),
        ("NOPERM this user has no permissions", errors.NoPermissionError),
        ("ERR max number of clients reached", errors.MaxClientsError),
        ("READONLY You can't write against a read only replica.", errors.ReadOnlyError),
        ("LOADING Redis is loading the dataset in memory", errors.LoadingError),
        ("TRYAGAIN Multiple keys request during rehashing of slot", errors.TryAgainError),
        ("CLUSTERDOWN The cluster is down", errors.ClusterDownError),
        ("CROSSSLOT Keys in request don't hash to the same slot", errors.CrossSlotError),
        ("MOVED 3999 127.0.0.1:6381", errors.MovedError),
        ("ASK 3999 127.0.0.1:6381", errors.AskError),
        ("ERR unknown command 'FOO'", errors.ReplyError),
    ],
)
def test_reply_error_picks_subclass_by_prefix(message: str, expected: type) -> None:
    error = errors.ReplyError(message)
    assert type(error) is expected
    assert str(error) == message
    assert isinstance(error, errors.ReplyError)
    assert error.may_have_executed is False


def test_redirect_carries_slot_and_address() -> None:
    moved = errors.ReplyError("MOVED 3999 127.0.0.1:6381")
    assert isinstance(moved, errors.MovedError)
    assert (moved.slot, moved.host, moved.port) == (3999, "127.0.0.1", 6381)
    assert moved.address == ("127.0.0.1", 6381)
    ask = errors.ReplyError("ASK 1 ::1:7000")
    assert isinstance(ask, errors.AskError)
    assert ask.address == ("::1", 7000)


def test_malformed_redirect_is_protocol_error() -> None:
    with pytest.raises(errors.ProtocolError, match="malformed redirect"):
        errors.ReplyError("MOVED nonsense")


def test_connection_closed_says_whether_executed() -> None:
    maybe = errors.ConnectionClosedError("lost", may_have_executed=True)
    assert maybe.may_have_executed
    assert "may have been executed" in str(maybe)
    never = errors.ConnectionClosedError("lost")
    assert not never.may_have_executed
    assert "was not executed" in str(never)
    assert isinstance(errors.ConnectionForcedCloseError(), errors.ConnectionClosedError)


def test_hierarchy_matches_aioredis_names() -> None:
    for name in (
        "ProtocolError", "ReplyError", "AuthError", "MaxClientsError", "ReadOnlyError",
        "PipelineError", "MultiExecError", "WatchVariableError", "ChannelClosedError",
        "ConnectionClosedError", "ConnectionForcedCloseError", "PoolClosedError",
        "MasterNotFoundError", "SlaveNotFoundError", "MasterReplyError", "SlaveReplyError",
    ):
        assert issubclass(getattr(errors, name), errors.RedisError), name
    assert issubclass(errors.WatchVariableError, errors.MultiExecError)
    assert issubclass(errors.MultiExecError, errors.PipelineError)
    assert issubclass(errors.TimeoutError, asyncio.TimeoutError)
    assert issubclass(errors.ConnectError, ConnectionError)
