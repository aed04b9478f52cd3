"""The reply dispatcher under hostile byte streams: each waiter's error hook runs at most once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from clustermgr import dispatch
from clustermgr.dispatch import ReplyDispatcher
from clustermgr.errors import ConnectionClosedError
from clustermgr.protocol import new_reader
from clustermgr.pubsubframes import PubSubState


async def test_moved_taken_over_then_garbage_calls_each_hook_once() -> None:
    loop = asyncio.get_running_loop()
    calls: list[tuple[int, str]] = []
    aborted: list[BaseException] = []

    def on_error(fut: asyncio.Future[Any], err: BaseException, *_: Any) -> bool:
        calls.append((id(fut), type(err).__name__))
        return True  # taken over, as a routing pool does for MOVED

    dispatcher = ReplyDispatcher(
        new_reader(host="127.0.0.1"), PubSubState(lambda *a: None),
        abort=aborted.append, count_error=lambda name: None, describe="fake",
    )
    first, second = loop.create_future(), loop.create_future()
    dispatcher.waiters.append((first, None, None, on_error, b"SET", (b"k", b"v")))
    dispatcher.waiters.append((second, None, None, on_error, b"GET", (b"k",)))
    dispatcher.feed(b"-MOVED 3999 127.0.0.1:7001\r\n?garbage\r\n")
    dispatcher.fail_pending(ConnectionClosedError, "lost", None, 2)
    assert [c for c in calls if c[0] == id(first)] == [(id(first), "MovedError")]
    assert [c for c in calls if c[0] == id(second)] == [(id(second), "ConnectionClosedError")]
    assert len(aborted) == 1
    first.cancel()
    second.cancel()


def _dispatcher() -> ReplyDispatcher:
    return ReplyDispatcher(
        new_reader(host="127.0.0.1"), PubSubState(lambda *a: None),
        abort=lambda error: None, count_error=lambda name: None, describe="fake",
    )


async def test_push_frames_log_once_then_a_counted_summary_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    dispatcher = _dispatcher()
    future = loop.create_future()
    dispatcher.waiters.append((future, None, None, None, b"GET", (b"k",)))
    with caplog.at_level(logging.WARNING, logger="clustermgr"):
        dispatcher.feed(b">1\r\n+x\r\n" * 10_000 + b"+done\r\n")
        assert future.result() == b"done"
        assert len(caplog.records) == 1
        monkeypatch.setattr(dispatch, "PUSH_LOG_INTERVAL", 0.0)
        dispatcher.feed(b">1\r\n+x\r\n")
    assert len(caplog.records) == 2
    assert "10000" in caplog.records[1].getMessage()
