"""A hypothesis state machine drives a pool's subscriptions against a real server.

Rules subscribe, unsubscribe (by name, duplicates included, or all), give up
on either (cancelled: the call still holds), kill the pub/sub connection with
CLIENT KILL and close the pool; ``check`` waits for
the server to agree with the model (PUBSUB CHANNELS / NUMSUB / NUMPAT) and
that every desired channel and pattern receives what is published.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from clustermgr import create_pool, errors
from clustermgr.events import PubSubDisconnected

_CONVERGE_S = 3.0


class SubscriptionMachine(RuleBasedStateMachine):
    """The model: which channels and patterns are desired, and their Channel objects."""

    address: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        prefix = f"sm-{uuid.uuid4().hex[:6]}"
        self.client = prefix
        self.names = [f"{prefix}-c{i}" for i in range(3)]
        self.patterns = [f"{prefix}-p{i}*" for i in range(2)]
        self.pool: Any = self.run(create_pool(self.address, name=self.client))
        self.baseline_numpat = int(self.run(self.pool.execute("PUBSUB", "NUMPAT")))
        self.channels: dict[str, Any] = {}  # desired name -> its Channel
        self.pattern_channels: dict[str, Any] = {}
        self.ended: list[Any] = []  # channels that must have ended
        self.closed = False
        self.sent = 0
        self.lost = asyncio.Event()
        self.on_lost: list[tuple[str, list[str]]] = []  # sent the moment the loss is seen
        self.sent_on_lost: list[Any] = []
        self.pool.events.subscribe(self._lost, PubSubDisconnected)

    def _lost(self, _: Any) -> None:
        for command, args in self.on_lost:  # the connection is not back yet, for sure
            self.sent_on_lost.append(self.pool.execute_pubsub(command, *args))
        self.on_lost.clear()
        self.lost.set()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 10))

    async def _execute(self, *args: Any) -> Any:
        # In the loop: the first SUBSCRIBE may have taken the pool's only free
        # connection, and opening another needs a running loop.
        return await self.pool.execute(*args)

    async def _pubsub(self, command: str, *args: str) -> Any:
        return await self.pool.execute_pubsub(command, *args)

    # -- rules -------------------------------------------------------------

    @precondition(lambda self: not self.closed)
    @rule(picks=st.lists(st.integers(0, 2), min_size=1, max_size=4))
    def subscribe(self, picks: list[int]) -> None:
        args = [self.names[i] for i in picks]
        replies = self.run(self._pubsub("SUBSCRIBE", *args))
        assert len(replies) == len(args)  # one confirmation per argument
        for name in args:
            self.channels.setdefault(name, self.pool.pubsub_channels[name])

    @precondition(lambda self: not self.closed)
    @rule(picks=st.lists(st.integers(0, 1), min_size=1, max_size=3))
    def psubscribe(self, picks: list[int]) -> None:
        args = [self.patterns[i] for i in picks]
        self.run(self._pubsub("PSUBSCRIBE", *args))
        for pattern in args:
            self.pattern_channels.setdefault(pattern, self.pool.pubsub_patterns[pattern])

    @precondition(lambda self: not self.closed)
    @rule(picks=st.lists(st.integers(0, 2), max_size=3))
    def unsubscribe(self, picks: list[int]) -> None:
        args = [self.names[i] for i in picks]
        self.run(self._pubsub("UNSUBSCRIBE", *args))
        for name in args or list(self.channels):
            if name in self.channels:
                self.ended.append(self.channels.pop(name))

    @precondition(lambda self: not self.closed)
    @rule(picks=st.lists(st.integers(0, 1), max_size=2))
    def punsubscribe(self, picks: list[int]) -> None:
        args = [self.patterns[i] for i in picks]
        self.run(self._pubsub("PUNSUBSCRIBE", *args))
        for pattern in args or list(self.pattern_channels):
            if pattern in self.pattern_channels:
                self.ended.append(self.pattern_channels.pop(pattern))

    @precondition(lambda self: not self.closed)
    @rule(wait_lost=st.booleans())
    def kill_pubsub_connection(self, wait_lost: bool = False) -> None:
        """CLIENT KILL the pool's pub/sub connection; the next rule runs before it is back.

        With ``wait_lost`` the rule ends once the pool saw the loss (it is
        reconnecting), else at once (the loss may not have been read yet).
        """
        self.lost.clear()
        listing = self.run(self._execute("CLIENT", "LIST", "TYPE", "pubsub")).decode()
        for line in listing.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if fields.get("name") == self.client:
                self.run(self._execute("CLIENT", "KILL", "ID", fields["id"]))
                if wait_lost and (self.channels or self.pattern_channels):
                    self.run(self.lost.wait())
                return

    @precondition(lambda self: not self.closed and (self.channels or self.pattern_channels))
    @rule(channel_picks=st.lists(st.integers(0, 2), max_size=3),
          pattern_picks=st.lists(st.integers(0, 1), max_size=2))
    def kill_then_unsubscribe(self, channel_picks: list[int], pattern_picks: list[int]) -> None:
        """Unsubscribe while the pub/sub connection is known to be reconnecting."""
        names = [self.names[i] for i in channel_picks]
        patterns = [self.patterns[i] for i in pattern_picks]
        self.on_lost = [("UNSUBSCRIBE", names), ("PUNSUBSCRIBE", patterns)]
        self.kill_pubsub_connection(wait_lost=True)
        for command, args in self.on_lost:  # nothing was killed (it was reconnecting)
            self.run(self._pubsub(command, *args))
        self.on_lost = []
        for future in self.sent_on_lost:
            self.run(future)
        self.sent_on_lost.clear()
        for model, args in ((self.channels, names), (self.pattern_channels, patterns)):
            for name in args or list(model):
                if name in model:
                    self.ended.append(model.pop(name))

    @precondition(lambda self: not self.closed)
    @rule(command=st.sampled_from(["SUBSCRIBE", "UNSUBSCRIBE"]),
          picks=st.lists(st.integers(0, 2), min_size=1, max_size=3),
          turns=st.integers(0, 2), reconnecting=st.booleans())
    def cancelled(self, command: str, picks: list[int], turns: int, reconnecting: bool) -> None:
        """Give up on a (un)subscribe after ``turns`` loop turns: the call holds all the same."""
        if reconnecting:
            self.kill_pubsub_connection(wait_lost=True)
        args = [self.names[i] for i in picks]
        self.run(self._give_up(command, args, turns))
        for name in args:
            if command == "SUBSCRIBE":
                self.channels.setdefault(name, self.pool.pubsub_channels[name])
            elif name in self.channels:
                self.ended.append(self.channels.pop(name))

    @precondition(lambda self: not self.closed)
    @rule()
    def check(self) -> None:
        self.run(self._converged())
        self.run(self._delivered())
        self._ended()

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        readers = [
            self.loop.create_task(c.get())
            for c in (*self.channels.values(), *self.pattern_channels.values())
        ]
        self.run(asyncio.sleep(0))  # the readers wait in get()
        self.pool.close()
        self.run(self.pool.wait_closed())
        self.closed = True
        if readers:
            done, pending = self.loop.run_until_complete(asyncio.wait(readers, timeout=2))
            assert not pending
            for task in done:  # a message still queued, or the end: None (aioredis 1.x)
                assert task.exception() is None, task
        self.ended += [*self.channels.values(), *self.pattern_channels.values()]
        self.channels.clear()
        self.pattern_channels.clear()
        self._ended()
        assert not self.pool.in_pubsub

    @precondition(lambda self: self.closed)
    @rule(command=st.sampled_from(["SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE"]))
    def after_close(self, command: str) -> None:
        try:
            self.run(self._pubsub(command, self.names[0] + "*"))
        except errors.PoolClosedError:
            return
        raise AssertionError(f"{command} on a closed pool did not raise PoolClosedError")

    async def _give_up(self, command: str, args: list[str], turns: int) -> None:
        future = self.pool.execute_pubsub(command, *args)
        for _ in range(turns):
            await asyncio.sleep(0)
        future.cancel()
        await asyncio.gather(future, return_exceptions=True)

    # -- checks ------------------------------------------------------------

    async def _server_state(self) -> tuple[set[bytes], dict[bytes, int], int]:
        channels = set(await self.pool.execute("PUBSUB", "CHANNELS", f"{self.client}-*"))
        reply = await self.pool.execute("PUBSUB", "NUMSUB", *self.names)
        numsub = {reply[i]: int(reply[i + 1]) for i in range(0, len(reply), 2)}
        numpat = int(await self.pool.execute("PUBSUB", "NUMPAT")) - self.baseline_numpat
        return channels, numsub, numpat

    async def _converged(self) -> None:
        want = {n.encode() for n in self.channels}
        assert set(self.pool.pubsub_channels) == want  # desired state changes at once
        assert set(self.pool.pubsub_patterns) == {p.encode() for p in self.pattern_channels}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CONVERGE_S
        while True:
            state = await self._server_state()
            expected = (
                want, {n.encode(): int(n in self.channels) for n in self.names},
                len(self.pattern_channels),
            )
            if state == expected:
                return
            assert loop.time() < deadline, f"server {state} != model {expected}"
            await asyncio.sleep(0.02)

    async def _delivered(self) -> None:
        self.sent += 1
        payload = f"m{self.sent}".encode()
        for name, channel in self.channels.items():
            assert await self.pool.execute("PUBLISH", name, payload) == 1
            await _receive(channel, payload)
        for pattern, channel in self.pattern_channels.items():
            target = pattern[:-1] + "-x"
            assert await self.pool.execute("PUBLISH", target, payload) == 1
            await _receive(channel, (target.encode(), payload))

    def _ended(self) -> None:
        for channel in self.ended:
            while channel.qsize:  # messages that came before the end are still read
                self.run(channel.get())
            assert not channel.is_active, channel

    def teardown(self) -> None:
        if not self.closed:
            self.pool.close()
            self.run(self.pool.wait_closed())
        self.loop.close()


async def _receive(channel: Any, wanted: Any) -> None:
    """Read ``channel`` until ``wanted`` (older messages may come first)."""
    while True:
        message = await asyncio.wait_for(channel.get(), 2)
        if message == wanted:
            return


def test_subscription_state_machine(redis_standalone: Any) -> None:
    SubscriptionMachine.address = redis_standalone.address
    run_state_machine_as_test(
        SubscriptionMachine,
        settings=settings(
            max_examples=30, stateful_step_count=20, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
