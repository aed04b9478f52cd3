"""The overdue hook of a connection's stall check, and ``ConnectionsPool.fence``
(closing the connections with replies pending), against a silent fake server."""

from __future__ import annotations

import asyncio

import pytest

from clustermgr.errors import ConnectionForcedCloseError
from clustermgr.pool import ConnectionsPool
from clustermgr.stall import Overdue
from tests.fake_server import FakeServer

pytestmark = pytest.mark.timeout(30)


async def test_overdue_is_told_once_per_silence_before_the_reply_bound() -> None:
    """Replies owed, nothing comes: the hook runs once after ``after`` seconds,
    the connection stays open until ``read_timeout``."""
    told: list[float] = []
    loop = asyncio.get_running_loop()
    async with FakeServer() as server:
        pool = ConnectionsPool(
            server.address, minsize=1, maxsize=1, read_timeout=2.0,
            overdue=Overdue(0.1, lambda: told.append(loop.time())),
        )
        try:
            assert await pool.execute("PING") in (b"PONG", "PONG")
            await asyncio.sleep(0.3)
            assert told == []  # nothing owed: never overdue
            pending = asyncio.ensure_future(pool.execute("EVIL", "silent"))
            start = loop.time()
            await asyncio.sleep(0.6)
            assert len(told) == 1
            assert 0.1 <= told[0] - start < 0.35
            assert not pending.done()  # still within read_timeout
            assert pool.fence() == 1
            with pytest.raises(ConnectionForcedCloseError) as caught:
                await pending
            assert caught.value.may_have_executed is True
            assert pool.fence() == 0  # nothing pending any more
            assert await pool.execute("PING") in (b"PONG", "PONG")  # a new connection
        finally:
            pool.close()
            await pool.wait_closed()


def test_overdue_needs_positive_seconds() -> None:
    """``Overdue.after`` must be positive."""
    with pytest.raises(ValueError):
        Overdue(0, lambda: None)
