"""After register_with_aioredis(), aioredis 1.x ``except`` clauses catch clustermgr's errors."""

from __future__ import annotations

import abc
from typing import Any

import pytest

from clustermgr import create_connection, errors, register_with_aioredis

aioredis = pytest.importorskip("aioredis")
aioredis_errors = pytest.importorskip("aioredis.errors")

register_with_aioredis()

_NAMES = sorted({*aioredis_errors.__all__, "BusyGroupError", "MasterReplyError", "SlaveReplyError"})


def test_except_ignores_subclasscheck() -> None:
    """Why the aliasing uses real bases: ABC registration satisfies isinstance, not except."""

    class Virtual(Exception, metaclass=abc.ABCMeta):
        pass

    class Real(Exception):
        pass

    Virtual.register(Real)
    assert isinstance(Real(), Virtual)
    with pytest.raises(Real):
        try:
            raise Real
        except Virtual:  # never matches: the real MRO decides
            pytest.fail("except honoured a virtual subclass")


@pytest.mark.parametrize("name", _NAMES)
def test_every_aioredis_error_name_exists_and_is_caught(name: str) -> None:
    ours = getattr(errors, name)
    theirs = getattr(aioredis_errors, name)
    assert issubclass(ours, theirs)
    error = ours.__new__(ours, "x")
    try:
        raise error
    except theirs as caught:
        assert caught is error


@pytest.mark.parametrize(
    ("message", "theirs"),
    [
        ("ERR unknown command 'FOO'", "ReplyError"),
        ("NOAUTH Authentication required.", "AuthError"),
        ("WRONGPASS invalid username-password pair", "AuthError"),
        ("ERR max number of clients reached", "MaxClientsError"),
        ("BUSYGROUP Consumer Group name already exists", "BusyGroupError"),
        ("READONLY You can't write against a read only replica.", "ReadOnlyError"),
        ("MOVED 3999 127.0.0.1:6381", "ReplyError"),
    ],
)
def test_reply_errors_are_aioredis_classes_by_prefix(message: str, theirs: str) -> None:
    error = errors.ReplyError(message)
    assert isinstance(error, getattr(aioredis_errors, theirs))
    assert isinstance(error, errors.ReplyError)
    assert str(error) == message


def test_aliasing_keeps_our_messages_and_is_idempotent() -> None:
    register_with_aioredis()
    inner = errors.ReplyError("ERR boom")
    error = errors.MultiExecError([inner])
    assert error.errors == [inner]
    assert str(error) == f"MultiExecError errors: {[inner]!r}"
    assert errors.ReplyError.__mro__.count(aioredis_errors.ReplyError) == 1
    closed = errors.ConnectionClosedError("gone", may_have_executed=True)
    assert isinstance(closed, aioredis_errors.ConnectionClosedError)
    assert "may have been executed" in str(closed)


def test_aioredis_own_errors_unchanged() -> None:
    assert type(aioredis_errors.ReplyError("ERR x")) is aioredis_errors.ReplyError
    assert isinstance(aioredis_errors.ReplyError("NOAUTH x"), aioredis_errors.AuthError)


async def test_server_error_caught_by_aioredis_except(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        await conn.execute("SET", "aerr:k", "v")
        with pytest.raises(errors.WrongTypeError):
            try:
                await conn.execute("LPUSH", "aerr:k", "x")
            except aioredis.ReplyError as caught:
                raise caught
        conn.close()
        await conn.wait_closed()
        try:
            conn.execute("PING")
        except aioredis.ConnectionClosedError:
            pass
        else:
            pytest.fail("execute on a closed connection did not raise")
    finally:
        conn.close()
        await conn.wait_closed()


def test_redirect_kinds_hold_after_aliasing() -> None:
    moved = errors.ReplyError("MOVED 3999 127.0.0.1:6381")
    assert type(moved) is errors.MovedError and moved.address == ("127.0.0.1", 6381)
    bad = errors.ReplyError("MOVED 99999 127.0.0.1:6381")  # kind_for: unusable slot
    assert type(bad) is errors.MalformedRedirectError
    assert isinstance(bad, aioredis_errors.ReplyError)
    assert isinstance(bad, aioredis_errors.ProtocolError)
    assert errors.ReplyError("ERR max number of clients + cluster connections reached").__class__ \
        is errors.MaxClientsError
