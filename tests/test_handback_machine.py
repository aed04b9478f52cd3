"""A state machine drives acquire / execute / cancel / release against a real server.

After every release the released connection must be closed or clean: the
server reports the pool's db, it is not in MULTI nor blocked, its watched
keys do not abort a transaction, and no reply is pending. Shared traffic
always runs on the pool's db, and a cancelled BLPOP never pops an item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from clustermgr import create_connection, create_pool, errors
from clustermgr.connection import RedisConnection
from clustermgr.pool import ConnectionsPool

_T = TypeVar("_T")

QUEUE = "hbm:queue"
WATCHED = ("hbm:w0", "hbm:w1")
CANCEL_POINTS = st.sampled_from(["now", "turn", "later", "never"])


def _client_info(info: bytes) -> dict[bytes, bytes]:
    return dict(part.split(b"=", 1) for part in info.split() if b"=" in part)


class HandBackMachine(RuleBasedStateMachine):
    address: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.pool: ConnectionsPool = self.run(
            lambda: create_pool(self.address, minsize=1, maxsize=3)
        )
        self.side: RedisConnection = self.run(lambda: create_connection(self.address))
        self.run(lambda: self.side.execute("DEL", QUEUE, *WATCHED))
        self.held: list[RedisConnection] = []
        self.queued = 0  # items in QUEUE as far as the test knows

    def run(self, make: Callable[[], Awaitable[_T]], timeout: float = 5.0) -> _T:
        """Run ``make()`` (called inside the loop) to completion, bounded in time."""
        async def bounded() -> _T:
            return await asyncio.wait_for(make(), timeout)

        return self.loop.run_until_complete(bounded())

    async def _cancel_at(self, future: Any, point: str) -> Any:
        """Let ``future`` run until ``point``, then cancel it (``never``: await it)."""
        if point == "turn":
            await asyncio.sleep(0)
        elif point == "later":
            await asyncio.sleep(0.005)
        if point != "never":
            future.cancel()
            await asyncio.sleep(0.01)  # the cancellation takes effect
            return None
        try:
            return await future
        except errors.ReplyError as exc:
            return exc

    # -- rules ------------------------------------------------------------

    @precondition(lambda self: len(self.held) < 2)  # one stays free for shared traffic
    @rule()
    def acquire(self) -> None:
        self.held.append(self.run(self.pool.acquire))

    @precondition(lambda self: self.held)
    @rule(data=st.data(), kind=st.sampled_from(["plain", "select", "watch", "multi", "blpop"]),
          point=CANCEL_POINTS)
    def execute(self, data: st.DataObject, kind: str, point: str) -> None:
        conn = data.draw(st.sampled_from(self.held))
        if conn.closed:
            return
        command: tuple[Any, ...]
        before: tuple[Any, ...] = ()
        if kind == "plain":
            command = ("SET", "hbm:plain", "x")
        elif kind == "select":
            command = ("SELECT", data.draw(st.integers(0, 3)))
        elif kind == "watch":
            command = ("WATCH", data.draw(st.sampled_from(WATCHED)))
        elif kind == "multi":
            before, command = ("MULTI",), ("SET", "hbm:multi", "x")
        elif point == "never" or self.queued:
            # Awaited (a pop that is served right away cannot be given up on):
            # served or timed out, never left pending.
            point = "never"
            command = ("BLPOP", QUEUE, 0.05)
        else:
            command = ("BLPOP", QUEUE, data.draw(st.sampled_from([0, 5])))

        async def issue() -> Any:
            first = conn.execute(*before) if before else None
            reply = await self._cancel_at(conn.execute(*command), point)
            if first is not None:
                await asyncio.gather(first, return_exceptions=True)
            return reply

        reply = self.run(issue)
        if kind == "blpop" and reply is not None and reply != b"QUEUED":  # not inside MULTI
            self.queued -= 1

    @rule(point=CANCEL_POINTS)
    def pool_blpop(self, point: str) -> None:
        if point == "never" or self.queued:
            reply = self.run(lambda: self.pool.execute("BLPOP", QUEUE, 0.05))
            self.queued -= reply is not None
            return
        self.run(lambda: self._cancel_at(
            asyncio.ensure_future(self.pool.execute("BLPOP", QUEUE, 0)), point
        ))

    @rule()
    def push(self) -> None:
        self.run(self._no_blocked_clients)
        self.run(lambda: self.side.execute("RPUSH", QUEUE, "item"))
        self.queued += 1

    @rule(db=st.sampled_from([0, 1, 100000]))
    def pool_select(self, db: int) -> None:
        before = self.pool.db
        try:
            self.run(lambda: self.pool.select(db))
        except errors.ReplyError:
            assert db == 100000 and self.pool.db == before
        else:
            assert self.pool.db == db

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(self.held))
        self.held.remove(conn)

        async def release() -> None:
            self.pool.release(conn)
            await self._settled()

        self.run(release)
        if not conn.closed:
            self.run(lambda: self._assert_clean(conn))

    # -- checks -----------------------------------------------------------

    async def _settled(self) -> None:
        """Wait until no released connection is still being reset."""
        for _ in range(400):
            if self.pool.size == self.pool.freesize + len(self.held):
                return
            await asyncio.sleep(0.005)
        raise AssertionError("a released connection is still being reset after 2 s")

    async def _no_blocked_clients(self) -> None:
        for _ in range(400):
            info = await self.side.execute("INFO", "clients")
            if b"blocked_clients:0\r" in info:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"clients still blocked after 2 s: {info!r}")

    async def _assert_clean(self, conn: RedisConnection) -> None:
        assert conn.in_flight == 0 and not conn.in_transaction and not conn.in_pubsub
        info = _client_info(await conn.execute("CLIENT", "INFO"))
        assert int(info[b"db"]) == conn.db == self.pool.db
        assert not set(info[b"flags"].decode()) & {"x", "b", "P"}  # MULTI, blocked, pub/sub
        for key in WATCHED:  # a leftover WATCH would abort this transaction
            await self.side.execute("SET", key, "touched")
        conn.execute("MULTI")
        conn.execute("PING")
        assert await conn.execute("EXEC") == [b"PONG"]
        assert not conn.watching and conn.state.blocking == 0

    @invariant()
    def shared_traffic_uses_the_pool_db(self) -> None:
        info = _client_info(self.run(lambda: self.pool.execute("CLIENT", "INFO")))
        assert int(info[b"db"]) == self.pool.db

    @invariant()
    def cancelled_pops_take_nothing(self) -> None:
        self.run(self._no_blocked_clients)
        assert self.run(lambda: self.side.execute("LLEN", QUEUE)) == self.queued

    def teardown(self) -> None:
        async def close() -> None:
            for conn in self.held:
                self.pool.release(conn)
            self.pool.close()
            self.side.close()
            await self.pool.wait_closed()
            await self.side.wait_closed()

        try:
            self.run(close)
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()


def test_hand_back_contract_holds_for_any_sequence(redis_standalone: Any) -> None:
    HandBackMachine.address = redis_standalone.address
    run_state_machine_as_test(
        HandBackMachine,
        settings=settings(
            max_examples=30, stateful_step_count=15, deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
