"""Typed errors: reply-prefix dispatch, redirects, may_have_executed."""

from __future__ import annotations

import asyncio

import pytest
from fake_server import FakeServer

from clustermgr import errors
from clustermgr.cluster import create_cluster_pool, key_slot
from clustermgr.protocol import new_reader


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("WRONGTYPE Operation against a key", errors.WrongTypeError),
        ("NOAUTH Authentication required.", errors.AuthError),
        ("WRONGPASS invalid username-password pair", errors.AuthError),
        ("ERR invalid password", errors.AuthError),
        ("NOPERM this user has no permissions", errors.NoPermissionError),
        ("ERR max number of clients reached", errors.MaxClientsError),
        # A cluster-enabled Redis 7 node says it this way.
        ("ERR max number of clients + cluster connections reached", errors.MaxClientsError),
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


_MALFORMED_REDIRECTS = [
    "MOVED nonsense",
    "MOVED 12",
    "MOVED 99999 host:7000",
    "MOVED 16384 host:7000",
    "MOVED -1 host:7000",
    "MOVED 1 host:70000",
    "MOVED 1 host:0",
    "MOVED 99999 host:70000",
    "ASK abc host:1",
    "ASK 1 host",
    "ASK 1 host:",
    "MOVED 1 host:port",
    "MOVED 1 [::1:7000",
    "MOVED 1 []:7000",
    "MOVED 1 ::1]:7000",
    "MOVED 1 host:7000 extra",
    "MOVED \u00b2 host:7000",
    "MOVED 1 host:" + "9" * 5000,
]


@pytest.mark.parametrize("message", _MALFORMED_REDIRECTS)
def test_malformed_redirect_is_a_protocol_error_reply(message: str) -> None:
    error = errors.ReplyError(message)
    assert isinstance(error, errors.ProtocolError)
    assert isinstance(error, errors.ReplyError)  # the connection fails only this command
    assert not isinstance(error, errors.RedirectError)  # nobody follows it
    assert error.may_have_executed is False  # the server refused the command
    assert message in str(error)


@pytest.mark.parametrize("message", _MALFORMED_REDIRECTS)
def test_malformed_redirect_from_the_wire_is_a_protocol_error(message: str) -> None:
    reader = new_reader(host="10.0.0.1")
    reader.feed(b"-" + message.encode() + b"\r\n+OK\r\n")
    error = reader.gets()
    assert isinstance(error, errors.ProtocolError) and isinstance(error, errors.ReplyError)
    assert reader.gets() == b"OK"  # the stream stays in step


def test_constructing_a_malformed_redirect_directly_raises() -> None:
    with pytest.raises(errors.ProtocolError, match="malformed redirect"):
        errors.MovedError("MOVED 12")


@pytest.mark.parametrize(
    ("message", "address"),
    [
        ("MOVED 1 [::1]:7000", ("::1", 7000)),
        ("MOVED 1 ::1:7000", ("::1", 7000)),
        ("ASK 16383 [fe80::1%eth0]:6379", ("fe80::1%eth0", 6379)),
        ("MOVED 0 redis-node-1.example:65535", ("redis-node-1.example", 65535)),
        ("MOVED 3999 :6380", ("", 6380)),
    ],
)
def test_valid_redirect_forms(message: str, address: tuple[str, int]) -> None:
    error = errors.ReplyError(message)
    assert isinstance(error, errors.RedirectError)
    assert error.address == address


def test_empty_redirect_host_means_the_host_of_the_connection() -> None:
    reader = new_reader(host="10.0.0.1")
    reader.feed(b"-MOVED 3999 :6380\r\n-ASK 2 10.0.0.2:6381\r\n")
    moved = reader.gets()
    assert isinstance(moved, errors.MovedError)
    assert (moved.slot, moved.address) == (3999, ("10.0.0.1", 6380))
    assert reader.gets().address == ("10.0.0.2", 6381)  # a named host is kept


def _cluster_of_one(server: FakeServer, get_reply: bytes) -> None:
    """Make ``server`` look like a one-master cluster answering GET with ``get_reply``."""
    host, port = server.address
    server.replies[(b"CLUSTER", b"INFO")] = b"$23\r\ncluster_current_epoch:1\r\n"
    server.replies[(b"CLUSTER", b"SHARDS")] = b"-ERR unknown subcommand\r\n"
    server.replies[(b"CLUSTER", b"SLOTS")] = (
        b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$%d\r\n%s\r\n:%d\r\n$2\r\nid\r\n"
        % (len(host), host.encode(), port)
    )
    server.replies[(b"COMMAND",)] = b"-ERR unknown command\r\n"
    server.replies[(b"GET",)] = get_reply


@pytest.mark.parametrize(
    "reply", [b"-MOVED 99999 127.0.0.1:70000\r\n", b"-MOVED 12\r\n", b"-ASK abc host:1\r\n",
              b"-MOVED 1 127.0.0.1\r\n"],
)
async def test_cluster_command_given_a_malformed_redirect_fails_with_protocol_error(
    reply: bytes,
) -> None:
    async with FakeServer() as server:
        _cluster_of_one(server, reply)
        pool = await create_cluster_pool([server.address], retry_timeout=5)
        try:
            with pytest.raises(errors.ProtocolError):
                await asyncio.wait_for(pool.execute(b"GET", b"k"), 2)  # no hang, no retries
            gets = [c for c in server.received if c[0].upper() == b"GET"]
            assert len(gets) == 1
            assert await pool.execute(b"SET", b"k", b"v") == b"OK"  # the connection survived
        finally:
            pool.close()
            await pool.wait_closed()


async def test_cluster_follows_an_empty_host_redirect_to_the_same_host() -> None:
    async with FakeServer() as first, FakeServer() as second:
        _cluster_of_one(first, b"-MOVED %d :%d\r\n" % (key_slot(b"k"), second.port))
        second.replies[(b"GET",)] = b"$1\r\nv\r\n"
        pool = await create_cluster_pool([first.address], retry_timeout=5)
        try:
            assert await asyncio.wait_for(pool.execute(b"GET", b"k"), 2) == b"v"
            assert [b"GET", b"k"] in second.received
        finally:
            pool.close()
            await pool.wait_closed()


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
