"""A blocking command's timeout is read as redis-server reads it.

Seconds (BLPOP, BLMOVE, BZPOPMIN, ...) go through ``strtold`` on the server,
so hex floats, exponents and a ``+`` sign are accepted and a space or ``_``
is not; milliseconds (XREAD BLOCK, WAIT) must be plain decimal integers.
Each form is asked of a real redis-server: the client refuses before sending
exactly what the server refuses, and bounds the reply by what it accepts.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest

from clustermgr import create_connection
from clustermgr.bounds import blocking_wait
from clustermgr.cluster import create_cluster_pool
from clustermgr.errors import ArgumentError, ReplyError, TimeoutArgumentError
from clustermgr.testing import LocalCluster, LocalServer
from clustermgr.testing.resp import RespError

pytestmark = pytest.mark.timeout(120)

#: Timeouts in seconds and the wait the server then allows (None: refused).
SECONDS: list[tuple[str, float | None]] = [
    ("5", 5.0), ("1.5", 1.5), ("0x10", 16.0), ("0X1P3", 8.0), ("0x.8", 0.5), ("1e1", 10.0),
    ("1E1", 10.0), ("+5", 5.0), ("1.", 1.0), (".5", 0.5), ("007", 7.0), ("0", math.inf),
    ("-0", math.inf), ("-0.0001", math.inf), ("0e-5000", math.inf), ("0x0", math.inf),
    ("0.0001", 0.001), ("0x1p-16445", 0.001), ("1e-4950", 0.001), ("-0.001", math.inf),
    (" 5", None), ("5 ", None), ("1_0", None), ("", None), (".", None), ("1e", None),
    ("0x", None), ("0x1p", None), ("nan", None), ("inf", None), ("-inf", None),
    ("infinity", None), ("-5", None), ("-0.00100000000000000001", None), ("1e-5000", None),
    ("0x1p-16446", None), ("1e4932", None), ("1e4933", None), ("9223372036854775807", None),
    ("\u0663", None), ("5\x00", None), ("soon", None), ("1" * 5200, None),
]

#: Timeouts in milliseconds (XREAD BLOCK, WAIT) and the wait in seconds.
MILLISECONDS: list[tuple[str, float | None]] = [
    ("100", 0.1), ("0", math.inf), ("1500", 1.5), ("9223372036854775807", 9223372036854775.807),
    ("0x10", None), ("1e1", None), (" 5", None), ("+5", None), ("007", None), ("-0", None),
    ("1.5", None), ("inf", None), ("-1", None), ("9223372036854775808", None), ("", None),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """A redis-server for this module: a non-empty list and stream to ask with."""
    with LocalServer(name="timeouts") as node:
        yield node


def _server_accepts(server: LocalServer, *command: str) -> bool:
    try:
        server.command(*command)
    except RespError as exc:
        assert "timeout" in str(exc), exc
        return False
    return True


@pytest.mark.parametrize(("text", "wait"), SECONDS)
def test_a_seconds_timeout_is_accepted_and_bounded_as_the_server_does(
    server: LocalServer, text: str, wait: float | None
) -> None:
    server.command("RPUSH", "full", "x")
    accepted = _server_accepts(server, "BLPOP", "full", text)  # a full list: no waiting
    assert accepted is (wait is not None)
    for name, args in [(b"BLPOP", ("k", text)), (b"BLMOVE", ("a", "b", "LEFT", "LEFT", text)),
                       (b"BZPOPMIN", ("z", text.encode())), (b"BLMPOP", (text, 1, "k", "LEFT"))]:
        if wait is None:
            with pytest.raises(TimeoutArgumentError, match="timeout"):
                blocking_wait(name, args)
        else:
            assert blocking_wait(name, args) == pytest.approx(wait, rel=1e-9)


@pytest.mark.parametrize(("text", "wait"), MILLISECONDS)
def test_a_milliseconds_timeout_is_accepted_and_bounded_as_the_server_does(
    server: LocalServer, text: str, wait: float | None
) -> None:
    server.command("XADD", "full-stream", "*", "f", "v")
    accepted = _server_accepts(server, "XREAD", "BLOCK", text, "STREAMS", "full-stream", "0")
    if not accepted and wait is not None and wait > 2**62 / 1000:
        pytest.skip("this server (Redis 7.2+, Valkey) refuses a timeout that overflows its "
                    "clock; 7.0 accepts it, and the client reads it as 7.0 does")
    assert accepted is (wait is not None)
    for name, args in [(b"XREAD", ("COUNT", "1", "BLOCK", text, "STREAMS", "s", "$")),
                       (b"XREADGROUP", ("GROUP", "BLOCK", "c", "BLOCK", text, "STREAMS", "s")),
                       (b"WAIT", ("0", text))]:
        if wait is None:
            with pytest.raises(TimeoutArgumentError, match="timeout"):
                blocking_wait(name, args)
        else:
            assert blocking_wait(name, args) == pytest.approx(wait, rel=1e-9)


def test_numbers_are_read_as_sent() -> None:
    assert blocking_wait(b"BLPOP", ("k", 1e-05)) == 0.001
    assert blocking_wait(b"BLPOP", ("k", -0.0)) == math.inf
    assert blocking_wait(b"WAIT", (1, 250)) == 0.25
    for bad in (math.inf, math.nan, 10**30, -1):
        with pytest.raises(TimeoutArgumentError):
            blocking_wait(b"BLPOP", ("k", bad))
    with pytest.raises(TimeoutArgumentError):
        blocking_wait(b"WAIT", (1, 2.5))


def test_an_option_named_block_is_not_a_timeout() -> None:
    # A group and a consumer named BLOCK; a COUNT of "BLOCK" is the server's syntax error.
    args = ("GROUP", "BLOCK", "BLOCK", "STREAMS", "s", ">")
    assert blocking_wait(b"XREADGROUP", args) is None
    assert blocking_wait(b"XREAD", ("BLOCK", "10", "STREAMS", "block", "0x1")) == 0.01


def test_the_refusal_is_a_reply_error_and_an_argument_error() -> None:
    with pytest.raises(TimeoutArgumentError) as caught:
        blocking_wait(b"BLPOP", ("k", " 5"))
    assert isinstance(caught.value, ReplyError) and isinstance(caught.value, ArgumentError)
    assert caught.value.may_have_executed is False
    assert "BLPOP" in str(caught.value) and "' 5'" in str(caught.value)


async def test_a_hex_timeout_is_not_cut_at_the_reply_bound(server: LocalServer) -> None:
    conn = await create_connection(server.address, read_timeout=0.3)
    try:
        assert await asyncio.wait_for(conn.execute("BLPOP", "nothing", "0x1p0"), 5) is None
        assert await asyncio.wait_for(conn.execute("BLPOP", "nothing", "+1"), 5) is None
    finally:
        conn.close()
        await conn.wait_closed()


async def test_a_refused_timeout_is_never_sent(server: LocalServer) -> None:
    conn = await create_connection(server.address)
    try:
        server.command("CONFIG", "RESETSTAT")
        with pytest.raises(TimeoutArgumentError):
            conn.execute("BLPOP", "nothing", " 5")
        with pytest.raises(TimeoutArgumentError):
            await conn.execute_batch([("PING",), ("XREAD", "BLOCK", "+5", "STREAMS", "s", "$")])
        assert await conn.execute("PING") == b"PONG"
        stats = server.info("commandstats")
        assert "cmdstat_blpop" not in stats and "cmdstat_xread" not in stats
        assert "cmdstat_ping" in stats
    finally:
        conn.close()
        await conn.wait_closed()


async def test_a_cluster_pool_refuses_a_bad_timeout_without_retrying(
    redis_cluster: LocalCluster,
) -> None:
    pool = await create_cluster_pool(redis_cluster.startup_nodes)
    try:
        with pytest.raises(TimeoutArgumentError):
            await asyncio.wait_for(pool.execute("BLPOP", "nothing", "1_0"), 5)
        with pytest.raises(TimeoutArgumentError):
            await asyncio.wait_for(
                pool.execute("XREAD", "BLOCK", "0x10", "STREAMS", "s", "$"), 5)
        assert await asyncio.wait_for(pool.execute("BLPOP", "nothing", "0x.8"), 5) is None
    finally:
        pool.close()
        await pool.wait_closed()
