"""Bad input: property tests of the reply parser path and of connections to bad peers.

* arbitrary / truncated / re-chunked bytes through :func:`clustermgr.protocol.new_reader`;
* a real :class:`~clustermgr.connection.RedisConnection` and pool against a
  fake server (``tests/fake_server.py``) that sends garbage, a truncated reply
  then closes, a huge bulk reply it never completes, or never answers: each
  gives a typed clustermgr error and only the affected connection closes;
* bad argument types fail before anything is sent;
* reply-error text and key/slot routing never fail in an untyped way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_server import FakeServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustermgr import create_connection, create_pool
from clustermgr.commands import CommandTable
from clustermgr.errors import (
    ConnectionClosedError,
    CrossSlotError,
    ProtocolError,
    RedirectError,
    RedisError,
    ReplyError,
    RouteError,
    TimeoutError,
)
from clustermgr.protocol import encode_command, new_reader
from clustermgr.slots import SLOT_COUNT

# -- RESP values and their encoding --------------------------------------------------

_simple_text = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)


def _resp() -> st.SearchStrategy[tuple[Any, bytes]]:
    """(expected parsed value, wire bytes) pairs of valid RESP2 replies."""
    leaves = st.one_of(
        _simple_text.map(lambda b: (b, b"+" + b + b"\r\n")),
        st.integers(-(2**63), 2**63 - 1).map(lambda n: (n, b":%d\r\n" % n)),
        st.binary(max_size=300).map(lambda b: (b, b"$%d\r\n%s\r\n" % (len(b), b))),
        st.just((None, b"$-1\r\n")),
        st.just((None, b"*-1\r\n")),
    )

    def arrays(children: st.SearchStrategy[tuple[Any, bytes]]) -> Any:
        return st.lists(children, max_size=6).map(
            lambda items: (
                [value for value, _ in items],
                b"*%d\r\n" % len(items) + b"".join(wire for _, wire in items),
            )
        )

    return st.recursive(leaves, arrays, max_leaves=25)


def _drain(reader: Any) -> list[Any]:
    out = []
    for _ in range(10_000):
        obj = reader.gets()
        if obj is False:
            return out
        out.append(obj)
    raise AssertionError("reader never ran dry")


@given(st.lists(_resp(), min_size=1, max_size=8), st.data())
@settings(max_examples=300, deadline=None)
def test_any_chunking_parses_the_same(replies: list[tuple[Any, bytes]], data: Any) -> None:
    wire = b"".join(w for _, w in replies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    reader = new_reader()
    parsed: list[Any] = []
    previous = 0
    for cut in [*cuts, len(wire)]:
        reader.feed(wire[previous:cut])
        previous = cut
        parsed += _drain(reader)
    assert parsed == [v for v, _ in replies]


@given(_resp(), st.data())
@settings(max_examples=300, deadline=None)
def test_truncated_reply_is_never_a_result(reply: tuple[Any, bytes], data: Any) -> None:
    _, wire = reply
    cut = data.draw(st.integers(0, len(wire) - 1))
    reader = new_reader()
    reader.feed(wire[:cut])
    assert reader.gets() is False  # waits for more, never a partial value
    reader.feed(wire[cut:])
    assert reader.gets() == reply[0]


@given(st.binary(max_size=2000))
@settings(max_examples=1000, deadline=None)
def test_arbitrary_bytes_give_values_or_protocol_error(blob: bytes) -> None:
    reader = new_reader()
    reader.feed(blob)
    try:
        for _ in range(len(blob) + 1):
            if reader.gets() is False:
                break
    except ProtocolError:
        pass  # the only exception the parser may raise


@given(st.sampled_from(b"?&@^`!\x00\x7f\xff abcXYZ0123"), st.binary(max_size=100))
def test_bad_type_byte_is_protocol_error(first: int, rest: bytes) -> None:
    reader = new_reader()
    reader.feed(bytes([first]) + rest + b"\r\n")
    with pytest.raises(ProtocolError):
        reader.gets()


@given(st.text(max_size=200))
@settings(max_examples=500)
def test_any_error_reply_text_maps_to_a_typed_error(text: str) -> None:
    error = ReplyError(text)
    assert isinstance(error, ReplyError)
    assert error.may_have_executed is False
    if isinstance(error, ProtocolError):  # only a malformed MOVED/ASK
        assert text.split(" ", 1)[0] in ("MOVED", "ASK")
    if isinstance(error, RedirectError):
        assert 0 <= error.slot < SLOT_COUNT and 0 < error.port < 65536


# -- arguments --------------------------------------------------------------------------

_bad_args = st.one_of(
    st.none(), st.booleans(), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.builds(object),
    st.complex_numbers(allow_nan=False),
)


@given(st.lists(st.one_of(st.binary(max_size=5), st.integers()), max_size=4), _bad_args, st.data())
def test_bad_argument_type_raises_type_error(good: list[Any], bad: Any, data: Any) -> None:
    position = data.draw(st.integers(0, len(good)))
    args = (*good[:position], bad, *good[position:])
    with pytest.raises(TypeError, match=f"argument {position + 1} "):
        encode_command(b"SET", args)


async def test_bad_argument_type_sends_nothing() -> None:
    async with FakeServer() as server:
        conn = await create_connection(server.address)
        try:
            for bad in (None, True, [1], {"a": 1}, object(), 1j):
                with pytest.raises(TypeError):
                    conn.execute("SET", "k", bad)
                assert conn.in_flight == 0
            assert await conn.execute("PING") == b"PONG"
            assert server.received == [[b"PING"]]  # the bad commands never left
        finally:
            conn.close()
            await conn.wait_closed()


# -- key extraction and slot mapping ------------------------------------------------------

_TABLE = CommandTable.builtin()
_NAMES = sorted(
    {info.name for info in (_TABLE.info(n) for n in (
        "get", "set", "mget", "mset", "del", "exists", "eval", "evalsha", "xread", "xreadgroup",
        "zunionstore", "sort", "object", "memory", "bitop", "lmpop", "zinterstore", "georadius",
        "migrate", "blpop", "hset", "rename", "smove", "copy", "sintercard", "xadd",
    )) if info is not None}
)
_arg = st.one_of(st.binary(max_size=8), st.integers(-5, 5).map(lambda n: str(n).encode()),
                 st.sampled_from([b"KEYS", b"STREAMS", b"BY", b"STORE", b"GET", b"COUNT"]))


@given(st.sampled_from(_NAMES), st.lists(_arg, max_size=8))
@settings(max_examples=1000)
def test_routing_arbitrary_arguments_is_typed(name: str, args: list[bytes]) -> None:
    try:
        slot = _TABLE.slot(name, tuple(args))
    except (CrossSlotError, RouteError):
        return
    assert slot is None or 0 <= slot < SLOT_COUNT
    keys = _TABLE.keys(name, tuple(args))
    assert all(isinstance(k, (bytes, str, memoryview, int, float)) for k in keys)


# -- a real connection against a bad peer ---------------------------------------------------

async def _closed_only(server: FakeServer, conn: Any, healthy: Any) -> None:
    """``conn`` is closed; ``healthy`` (same server) still works."""
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert conn.closed
    assert await asyncio.wait_for(healthy.execute("ECHO", "still"), 5) == b"still"
    assert not healthy.closed


@given(st.binary(min_size=1, max_size=500))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_garbage_then_close_gives_a_reply_or_typed_error(blob: bytes) -> None:
    async def run() -> None:
        async with FakeServer() as server:
            conn = await create_connection(server.address)
            other = await create_connection(server.address)
            try:
                try:
                    await asyncio.wait_for(conn.execute("EVIL", "garbage-close", blob), 5)
                except ConnectionClosedError as exc:
                    assert exc.may_have_executed is True
                    assert exc.__cause__ is None or isinstance(exc.__cause__, ProtocolError)
                except ReplyError:
                    pass  # the garbage happened to be an error reply
                await _closed_only(server, conn, other)
            finally:
                for c in (conn, other):
                    c.close()
                    await c.wait_closed()

    asyncio.run(run())


async def test_garbage_aborts_only_that_connection_of_the_pool() -> None:
    async with FakeServer() as server:
        pool = await create_pool(server.address, minsize=2, maxsize=2)
        try:
            bad = await pool.acquire()
            good = await pool.acquire()
            behind = [good.execute("ECHO", str(i)) for i in range(50)]
            evil = bad.execute("EVIL", "garbage", b"?not resp\r\n")
            queued = bad.execute("PING")  # queued behind the garbage on the bad one
            with pytest.raises(ConnectionClosedError) as info:
                await asyncio.wait_for(evil, 5)
            assert isinstance(info.value.__cause__, ProtocolError)
            assert info.value.may_have_executed is True
            with pytest.raises(ConnectionClosedError):
                await queued
            assert await asyncio.gather(*behind) == [str(i).encode() for i in range(50)]
            await _closed_only(server, bad, good)
            pool.release(bad)
            pool.release(good)
            # The pool drops the dead connection and keeps serving.
            assert await asyncio.wait_for(pool.execute("PING"), 5) == b"PONG"
        finally:
            pool.close()
            await pool.wait_closed()


@pytest.mark.parametrize("cut", [b"$10\r\nabc", b"*3\r\n:1\r\n", b"+OK", b"$5\r\nhello\r"])
async def test_truncated_reply_then_close(cut: bytes) -> None:
    async with FakeServer() as server:
        conn = await create_connection(server.address)
        other = await create_connection(server.address)
        try:
            with pytest.raises(ConnectionClosedError) as info:
                await asyncio.wait_for(conn.execute("EVIL", "truncate", cut), 5)
            assert info.value.may_have_executed is True
            assert "may have been executed" in str(info.value)
            await _closed_only(server, conn, other)
        finally:
            for c in (conn, other):
                c.close()
                await c.wait_closed()


async def test_huge_bulk_never_completed_is_bounded_and_closable() -> None:
    """64 MB declared, 1000 bytes sent, then silence.

    clustermgr has no per-reply timeout: the caller's own bound ends the wait.
    Closing the stuck connection fails what was queued on it as not executed
    (or unknown), and nothing else is affected; the 64 MB is never allocated.
    """
    async with FakeServer() as server:
        pool = await create_pool(server.address, minsize=2, maxsize=2)
        try:
            stuck = await pool.acquire()
            good = await pool.acquire()
            future = stuck.execute("EVIL", "huge")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), 0.3)
            assert await good.execute("PING") == b"PONG"
            stuck.close()
            with pytest.raises(ConnectionClosedError) as info:
                await future
            assert info.value.may_have_executed is True
            await _closed_only(server, stuck, good)
            pool.release(stuck)
            pool.release(good)
        finally:
            pool.close()
            await pool.wait_closed()


async def test_silent_peer_during_handshake_times_out_typed() -> None:
    async with FakeServer(handshake_silent=True) as server:
        with pytest.raises(TimeoutError) as info:
            await create_connection(server.address, password="pw", name="x", timeout=0.3)
        assert isinstance(info.value, RedisError)
        assert isinstance(info.value, asyncio.TimeoutError)
        assert "pw" not in str(info.value)
        for _ in range(100):  # our socket is closed
            if server.open == 0:
                break
            await asyncio.sleep(0.01)
        assert server.open == 0
        with pytest.raises(TimeoutError):
            await create_pool(server.address, create_connection_timeout=0.3, name="y")


@pytest.mark.parametrize("mode", ["silent", "huge"])
async def test_stalled_peer_with_read_timeout_closes_only_that_connection(mode: str) -> None:
    async with FakeServer() as server:
        pool = await create_pool(
            server.address, minsize=2, maxsize=2, read_timeout=0.5  # type: ignore[call-arg]
        )
        try:
            stuck = await pool.acquire()
            good = await pool.acquire()
            future = stuck.execute("EVIL", mode)
            queued = stuck.execute("PING")
            with pytest.raises(RedisError) as info:
                await asyncio.wait_for(future, 5)
            assert isinstance(info.value, (ConnectionClosedError, TimeoutError))
            assert info.value.may_have_executed is True
            with pytest.raises(RedisError):
                await queued
            await _closed_only(server, stuck, good)
            pool.release(stuck)
            pool.release(good)
            assert await asyncio.wait_for(pool.execute("PING"), 5) == b"PONG"
        finally:
            pool.close()
            await pool.wait_closed()
