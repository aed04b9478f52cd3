"""A fuzzer: random and adversarial RESP2/RESP3 bytes, cut anywhere, at a real connection.

Each example opens a :class:`~clustermgr.connection.RedisConnection` to a fake
server on 127.0.0.1, sends a few commands (sometimes a SUBSCRIBE first, with
or without an encoding), and the server answers with a drawn byte stream:
valid replies of every RESP2/RESP3 type, pub/sub frames (whole and short),
push frames, huge announcements, deep nesting, lines past the bound and
plain garbage, in drawn pieces (each its own write), then it closes or stays
silent. Asserted for every example:

* every pending command ends with its reply or a typed error (a
  :class:`RedisError`; or the codec's own error when a reply does not decode,
  which fails that command only, as documented);
* nothing reaches the loop's exception handler (no "Fatal error" log);
* ``wait_closed()`` returns;
* memory stays bounded: the peak RSS during the example (``VmHWM``, reset
  before each one) is less than :data:`_RSS_SLACK` above the RSS before it.

``CLUSTERMGR_FUZZ_EXAMPLES`` sets the number of examples (default: a short
run for the normal suite); the figures are printed at the end (``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustermgr import create_connection
from clustermgr.errors import RedisError

_EXAMPLES = int(os.environ.get("CLUSTERMGR_FUZZ_EXAMPLES", "120"))
_BOUND = 64 * 1024  # max_reply_size of the fuzzed connections
_RSS_SLACK = 64 * 1024 * 1024
_WAIT = 2.0  # seconds any one step may take


def _status(field: str) -> int:
    """A size from /proc/self/status, in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def _reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux: ``5`` to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _bulk(kind: bytes, payload: bytes) -> bytes:
    return kind + b"%d\r\n" % len(payload) + payload + b"\r\n"


_line = st.binary(max_size=24).filter(lambda b: b"\r" not in b and b"\n" not in b)
_leaves = st.one_of(
    _line.map(lambda b: b"+" + b + b"\r\n"),
    _line.map(lambda b: b"-ERR " + b + b"\r\n"),
    _line.map(lambda b: b"-MOVED " + b + b"\r\n"),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: b":%d\r\n" % n),
    st.binary(max_size=300).map(lambda b: _bulk(b"$", b)),
    st.binary(max_size=40).map(lambda b: _bulk(b"=", b"txt:" + b)),
    st.sampled_from([
        b"$-1\r\n", b"*-1\r\n", b"_\r\n", b"#t\r\n", b"#f\r\n", b",1.5\r\n", b",inf\r\n",
        b"(123456789012345678901234567890\r\n", b"$0\r\n\r\n", b"*0\r\n", b"%0\r\n",
    ]),
)


def _aggregate(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    items = st.lists(children, max_size=5)
    return st.one_of(
        st.tuples(st.sampled_from([b"*", b"~", b">"]), items).map(
            lambda t: t[0] + b"%d\r\n" % len(t[1]) + b"".join(t[1])
        ),
        st.tuples(st.sampled_from([b"%", b"|"]), items).map(
            lambda t: t[0] + b"%d\r\n" % (len(t[1]) // 2) + b"".join(t[1][: len(t[1]) // 2 * 2])
        ),
    )


_replies = st.recursive(_leaves, _aggregate, max_leaves=20)

_ADVERSARIAL = [
    b"$1000000000000\r\n", b"*1000000000\r\n", b"*4294967295\r\n", b"%999999999\r\n",
    b"$9223372036854775807\r\n", b"*9223372036854775807\r\n", b"$-2\r\n", b"*-5\r\n",
    b"*1\r\n" * 1100 + b"+deep\r\n", b"*1\r\n" * 990 + b"+deep\r\n",
    b"*1\r\n$7\r\nmessage\r\n", b"*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n",
    b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n", b"*1\r\n$8\r\npmessage\r\n",
    b"*1\r\n$8\r\nsmessage\r\n", b"*1\r\n$9\r\nsubscribe\r\n", b"*1\r\n$11\r\nunsubscribe\r\n",
    b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n",
    b"*3\r\n$12\r\nsunsubscribe\r\n$2\r\nch\r\n:0\r\n", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n",
    b"*2\r\n*0\r\n:1\r\n", b"*2\r\n%1\r\n:1\r\n:2\r\n:3\r\n", b"%1\r\n*1\r\n:1\r\n:2\r\n",
    b">2\r\n+a\r\n+b\r\n", b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n", b"|1\r\n+a\r\n+b\r\n",
    b"$5\r\nab\r\n", b"\r\n", b"?\r\n", b"$?\r\n", b"*?\r\n", b"!3\r\nERR\r\n", b"_x\r\n",
    b"+a\rb\r\n", b"$01\r\na\r\n", b"* 1\r\n:1\r\n",
    b"+" + b"a" * (_BOUND + 10), _bulk(b"$", b"y" * (_BOUND + 10)),
    b"*2\r\n" + _bulk(b"$", b"z" * (_BOUND // 2)) + _bulk(b"$", b"z" * (_BOUND // 2)),
]
_pieces = st.one_of(
    _replies, _replies, st.sampled_from(_ADVERSARIAL), st.binary(min_size=1, max_size=64),
)


class _Script:
    """What the fake server sends, and the commands the client sends first."""

    def __init__(self, wire: bytes, cuts: list[int], close: bool) -> None:
        self.chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
        self.close = close


async def _serve(script: _Script, done: asyncio.Event) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(65536)  # the client's commands
            for chunk in script.chunks:
                if chunk:
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0)  # let the client read this piece alone
        except (ConnectionError, OSError):
            pass
        finally:
            done.set()
            if script.close:
                writer.close()
            else:  # stay silent until the client goes away
                with contextlib.suppress(ConnectionError, OSError):
                    await reader.read()
                writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


_OUTCOMES = (RedisError, UnicodeDecodeError)


async def _run(script: _Script, subscribe: bool, encoding: str | None, commands: int) -> int:
    """One example; returns the number of fatal errors seen by the loop."""
    loop = asyncio.get_running_loop()
    fatal: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: fatal.append(context))
    done = asyncio.Event()
    server = await _serve(script, done)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await create_connection(
            ("127.0.0.1", port), encoding=encoding, max_reply_size=_BOUND
        )
        futures: list[asyncio.Future[Any]] = []
        if subscribe:
            futures.append(conn.execute_pubsub("SUBSCRIBE", "ch"))
        futures += [conn.execute("PING", encoding=encoding) for _ in range(commands)]
        await asyncio.wait_for(done.wait(), _WAIT)
        await asyncio.wait(futures, timeout=0.05)
        conn.close()
        await asyncio.wait_for(conn.wait_closed(), _WAIT)
        for future in futures:
            assert future.done(), "a command was left pending after wait_closed()"
            if not future.cancelled() and future.exception() is not None:
                error = future.exception()
                assert isinstance(error, _OUTCOMES), repr(error)
    finally:
        server.close()
        await server.wait_closed()
    assert fatal == [], fatal
    return len(fatal)


@pytest.mark.timeout(60 + _EXAMPLES // 5)  # the long form runs for minutes
def test_resp_fuzz() -> None:
    figures = {"examples": 0, "bytes": 0, "fatal": 0, "peak_growth": 0}
    baseline = _status("VmRSS")
    started = time.monotonic()
    quiet = logging.getLogger("clustermgr")  # thousands of expected protocol-error records
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)

    @settings(
        max_examples=_EXAMPLES, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        st.lists(_pieces, min_size=1, max_size=10), st.data(), st.booleans(), st.booleans(),
        st.sampled_from([None, "utf-8"]), st.integers(1, 6),
    )
    def example(
        pieces: list[bytes], data: Any, close: bool, subscribe: bool,
        encoding: str | None, commands: int,
    ) -> None:
        wire = b"".join(pieces)
        cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(wire) - 1)), max_size=8))))
        cuts = [c for c in cuts if c < len(wire)]
        before = _status("VmRSS")
        _reset_peak()
        figures["fatal"] += asyncio.run(_run(_Script(wire, cuts, close), subscribe, encoding,
                                             commands))
        growth = _status("VmHWM") - before
        figures["examples"] += 1
        figures["bytes"] += len(wire)
        figures["peak_growth"] = max(figures["peak_growth"], growth)
        assert growth < _RSS_SLACK, f"RSS peaked {growth} bytes above its start"

    try:
        example()
    finally:
        quiet.setLevel(level)
    print(
        f"\nRESP fuzz: {figures['examples']} inputs, {figures['bytes']} bytes, "
        f"fatal errors {figures['fatal']}, largest peak RSS growth in one input "
        f"{figures['peak_growth'] / 2**20:.1f} MiB, RSS {baseline / 2**20:.1f} MiB before "
        f"and {_status('VmRSS') / 2**20:.1f} MiB after, {time.monotonic() - started:.1f} s"
    )
    assert figures["fatal"] == 0
