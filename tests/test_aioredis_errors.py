"""After register_with_aioredis(), aioredis 1.x ``except`` clauses catch clustermgr's errors."""

from __future__ import annotations

import abc
import errno
import pickle
import socket
import subprocess
import sys
from typing import Any

import pytest

from clustermgr import create_connection, create_pool, errors, register_with_aioredis

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


def test_pipeline_errors_have_aioredis_args_shape() -> None:
    """``e.args[1]`` is the errors, as aioredis 1.x users read them; str stays readable."""
    register_with_aioredis()
    for name in ("PipelineError", "MultiExecError", "WatchVariableError"):
        ours = getattr(errors, name)("WATCH variable has changed")
        theirs = getattr(aioredis_errors, name)("WATCH variable has changed")
        assert ours.args == theirs.args == (f"{name} errors:", "WATCH variable has changed")
        assert str(ours) == f"{name} errors: 'WATCH variable has changed'"
        again = pickle.loads(pickle.dumps(ours))
        assert type(again) is type(ours) and again.args == ours.args


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


# aioredis 1.x checked these arguments with ``assert``: its users catch AssertionError.
_BAD_POOL_ARGUMENTS = [
    {"minsize": None}, {"minsize": -100}, {"minsize": 0.0}, {"minsize": 100},
    {"maxsize": None, "minsize": 2}, {"maxsize": -100}, {"maxsize": 0.0},
    {"maxsize": 1, "minsize": 2}, {"pool_cls": type},
]


@pytest.mark.parametrize("kwargs", _BAD_POOL_ARGUMENTS)
async def test_bad_pool_argument_is_also_an_assertion_error(
    kwargs: dict[str, Any], redis_standalone: Any
) -> None:
    with pytest.raises(AssertionError) as caught:
        await create_pool(redis_standalone.address, **kwargs)
    assert isinstance(caught.value, (ValueError, TypeError))  # clustermgr's own kind stays


async def test_bad_connection_cls_is_also_an_assertion_error(redis_standalone: Any) -> None:
    with pytest.raises(AssertionError) as caught:
        await create_connection(redis_standalone.address, connection_cls=type)
    assert isinstance(caught.value, TypeError)


async def test_releasing_a_foreign_connection_is_also_an_assertion_error(
    redis_standalone: Any,
) -> None:
    pool = await create_pool(redis_standalone.address)
    other = await create_connection(redis_standalone.address)
    try:
        with pytest.raises(AssertionError) as caught:
            pool.release(other)
        assert isinstance(caught.value, ValueError)
    finally:
        other.close()
        pool.close()
        await other.wait_closed()
        await pool.wait_closed()


def test_argument_errors_are_assertion_errors_only_after_registering() -> None:
    script = (
        "import clustermgr.errors as e\n"
        "assert not issubclass(e.ArgumentError, AssertionError)\n"
        "assert not issubclass(e.ArgumentTypeError, AssertionError)\n"
        "import clustermgr\n"
        "clustermgr.register_with_aioredis(); clustermgr.register_with_aioredis()\n"
        "assert issubclass(e.ArgumentError, AssertionError)\n"
        "assert issubclass(e.ArgumentError, ValueError)\n"
        "assert issubclass(e.ArgumentTypeError, AssertionError)\n"
        "assert e.ArgumentError.__mro__.count(AssertionError) == 1\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_clustermgr_classes_are_aioredis_virtual_subclasses() -> None:
    from clustermgr import ConnectionsPool, RedisConnection
    from clustermgr.cluster import ClusterPool

    assert issubclass(ConnectionsPool, aioredis.ConnectionsPool)
    assert issubclass(ClusterPool, aioredis.ConnectionsPool)
    assert issubclass(RedisConnection, aioredis.RedisConnection)
    assert not hasattr(ConnectionsPool, "_fill_free")  # nothing of aioredis' is inherited


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_refused_connection_is_also_connection_refused_error() -> None:
    """aioredis 1.x let the OS error through: ``except ConnectionRefusedError`` must still catch."""
    with pytest.raises(ConnectionRefusedError) as caught:
        await create_connection(("127.0.0.1", _closed_port()))
    assert isinstance(caught.value, errors.ConnectError)
    assert caught.value.errno == errno.ECONNREFUSED
    assert "cannot connect to 127.0.0.1:" in str(caught.value)
    with pytest.raises(ConnectionRefusedError):
        await create_pool(("127.0.0.1", _closed_port()))


async def test_missing_unix_socket_is_also_file_not_found_error(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        await create_connection(str(tmp_path / "no.sock"))
    assert isinstance(caught.value, errors.ConnectError)
