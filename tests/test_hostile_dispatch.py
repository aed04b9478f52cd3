"""The reply dispatcher under hostile byte streams: each waiter's error hook runs at most once."""

from __future__ import annotations

import asyncio
from typing import Any

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
