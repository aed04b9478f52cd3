"""The chaos workload, the fault log and the final accounting.

A :class:`Workload` runs writers (a fresh ``SET key value`` per write, every
value unique), readers, a publisher (sequence numbers) and a subscriber
through one pool, each operation bounded by ``asyncio.wait_for``.  Faults are
recorded in a :class:`FaultLog` with the window in which they can lose
acknowledged writes.  :func:`account` then checks every acknowledged write,
every "not executed" error, every published message and the resources, and
builds the summary line.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from clustermgr.errors import RedisError

OP_BOUND = 20.0  # seconds any caller may wait for one operation
CHANNEL = "chaos:events"
_PUBSUB_LOST = re.compile(r"pub/sub connection to .* lost|^\S+ .* lost on .*; resubscribing")
_PUBSUB_BACK = re.compile(
    r"pub/sub connection to .* back after|^resubscribed |^moved \d+ subscriptions"
)


def chaos_seconds(default: float = 25.0) -> float:
    """Fault-injection time per topology: ``CLUSTERMGR_CHAOS_SECONDS`` (long form) or short."""
    return float(os.environ.get("CLUSTERMGR_CHAOS_SECONDS", default))


def chaos_seed() -> int:
    text = os.environ.get("CLUSTERMGR_CHAOS_SEED")
    return int(text) if text else random.SystemRandom().randrange(2**31)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Fault:
    kind: str
    target: str
    start: float
    end: float = 0.0
    #: (from, to, slots or None for all keys, why): acknowledged writes in the window may be lost.
    loss_windows: list[tuple[float, float, frozenset[int] | None, str]] = field(
        default_factory=list
    )


class FaultLog:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def begin(self, kind: str, target: str) -> Fault:
        fault = Fault(kind, target, time.monotonic())
        self.faults.append(fault)
        return fault

    def counts(self) -> Counter[str]:
        return Counter(f.kind for f in self.faults)

    def explain(self, ack_time: float, slot: int | None) -> str | None:
        for fault in self.faults:
            for start, end, slots, why in fault.loss_windows:
                if start <= ack_time <= end and (slots is None or slot is None or slot in slots):
                    return f"{fault.kind}: {why}"
        return None


class PubSubEvents(logging.Handler):
    """Times of the pool's own pub/sub 'lost' and 'back' log records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lost: list[float] = []
        self.back: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if _PUBSUB_LOST.search(text):
            self.lost.append(time.monotonic())
        elif _PUBSUB_BACK.search(text):
            self.back.append(time.monotonic())


@dataclass
class Stats:
    acked: dict[str, float] = field(default_factory=dict)  # key -> ack time
    acked_by: dict[str, Any] = field(default_factory=dict)  # key -> pool.address at ack
    not_executed: list[str] = field(default_factory=list)  # errors with may_have_executed=False
    unknown: list[str] = field(default_factory=list)  # may_have_executed=True
    errors: Counter[str] = field(default_factory=Counter)
    untyped: list[str] = field(default_factory=list)
    over_bound: int = 0
    longest: float = 0.0
    longest_op: str = ""
    reads: int = 0
    read_errors: int = 0
    bad_reads: int = 0
    published: dict[int, float] = field(default_factory=dict)  # seq -> publish ack time
    received: set[int] = field(default_factory=set)
    duplicates: int = 0


class Workload:
    def __init__(
        self, pool: Any, prefix: str, *, writers: int = 8, readers: int = 3,
        slot_of: Callable[[str], int | None] = lambda _key: None,
    ) -> None:
        self.pool = pool
        self.prefix = prefix
        self.writers = writers
        self.readers = readers
        self.slot_of = slot_of
        self.stats = Stats()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sub_task: asyncio.Task[None] | None = None
        self._channel: Any = None
        self._rng = random.Random(0)
        self._published_before_stop = 0

    async def _bounded(self, what: str, awaitable: Any) -> Any:
        started = time.monotonic()
        try:
            return await asyncio.wait_for(awaitable, OP_BOUND)
        except asyncio.TimeoutError:
            self.stats.over_bound += 1
            raise
        finally:
            took = time.monotonic() - started
            if took > self.stats.longest:
                self.stats.longest, self.stats.longest_op = took, what

    def _record_error(self, exc: BaseException, key: str | None) -> None:
        stats = self.stats
        if isinstance(exc, asyncio.TimeoutError) and not isinstance(exc, RedisError):
            stats.errors["caller-timeout"] += 1
            if key is not None:
                stats.unknown.append(key)
            return
        if not isinstance(exc, RedisError):
            stats.untyped.append(f"{type(exc).__name__}: {exc}")
            return
        stats.errors[f"{type(exc).__name__}(may_have_executed={exc.may_have_executed})"] += 1
        if key is not None:
            (stats.unknown if exc.may_have_executed else stats.not_executed).append(key)

    async def _writer(self, n: int) -> None:
        for i in itertools.count():
            if self._stop.is_set():
                return
            key = f"{self.prefix}:w{n}:{i}"
            try:
                reply = await self._bounded("SET", self.pool.execute("SET", key, key))
            except Exception as exc:
                self._record_error(exc, key)
                await asyncio.sleep(0.02)
                continue
            if reply in (b"OK", "OK"):
                self.stats.acked[key] = time.monotonic()
                self.stats.acked_by[key] = getattr(self.pool, "address", None)
            else:
                self.stats.untyped.append(f"SET reply {reply!r}")
            await asyncio.sleep(0.003)

    async def _reader(self) -> None:
        rng = random.Random()
        while not self._stop.is_set():
            keys = self.stats.acked
            if not keys:
                await asyncio.sleep(0.01)
                continue
            key = rng.choice(list(itertools.islice(reversed(keys), 200)))
            try:
                value = await self._bounded("GET", self.pool.execute("GET", key))
            except Exception as exc:
                self.stats.read_errors += 1
                self._record_error(exc, None)
                await asyncio.sleep(0.02)
                continue
            self.stats.reads += 1
            if value not in (None, key.encode()):
                self.stats.bad_reads += 1  # a value this key never had
            await asyncio.sleep(0.005)

    async def _publisher(self) -> None:
        for seq in itertools.count():
            if self._stop.is_set():
                self._published_before_stop = seq
                return
            try:
                await self._bounded("PUBLISH", self.pool.execute("PUBLISH", CHANNEL, seq))
            except Exception as exc:
                self._record_error(exc, None)
                await asyncio.sleep(0.02)
                continue
            self.stats.published[seq] = time.monotonic()
            await asyncio.sleep(0.01)

    async def _subscriber(self) -> None:
        channel = self._channel
        while await channel.wait_message():
            seq = int(await channel.get())
            if seq in self.stats.received:
                self.stats.duplicates += 1
            self.stats.received.add(seq)

    async def start(self) -> None:
        await asyncio.wait_for(self.pool.execute_pubsub("SUBSCRIBE", CHANNEL), OP_BOUND)
        self._channel = self.pool.pubsub_channels[CHANNEL.encode()]
        self._sub_task = asyncio.ensure_future(self._subscriber())
        self._tasks = [asyncio.ensure_future(self._writer(n)) for n in range(self.writers)]
        self._tasks += [asyncio.ensure_future(self._reader()) for _ in range(self.readers)]
        self._tasks.append(asyncio.ensure_future(self._publisher()))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def check_still_subscribed(self, timeout: float = 15.0) -> bool:
        """Publish fresh sequence numbers until one arrives (the subscription is live)."""
        marker = 10**9
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            marker += 1
            with contextlib.suppress(RedisError, asyncio.TimeoutError):
                await asyncio.wait_for(self.pool.execute("PUBLISH", CHANNEL, marker), 5)
            await asyncio.sleep(0.2)
            if marker in self.stats.received:
                return bool(self._channel.is_active)
        return False

    async def close_subscriber(self) -> None:
        await asyncio.wait_for(self.pool.execute_pubsub("UNSUBSCRIBE", CHANNEL), OP_BOUND)
        if self._sub_task is not None:
            await asyncio.wait_for(self._sub_task, OP_BOUND)


async def read_back(pool: Any, keys: Iterable[str], batch: int = 500) -> dict[str, Any]:
    keys = list(keys)
    values: dict[str, Any] = {}
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        replies = await asyncio.wait_for(
            asyncio.gather(*(pool.execute("GET", k) for k in chunk)), 60
        )
        values.update(zip(chunk, replies, strict=True))
    return values


@dataclass
class Report:
    topology: str
    seed: int
    seconds: float
    faults: Counter[str]
    acked: int
    lost: int
    explained: Counter[str]
    unexplained: list[str]
    executed_but_reported_not: list[str]
    unknown_outcome: int
    unknown_applied: int
    errors: Counter[str]
    untyped: list[str]
    over_bound: int
    longest: float
    longest_op: str
    reads: int
    bad_reads: int
    published: int
    received: int
    gaps: int
    gaps_explained: int
    gaps_unexplained: list[int]
    duplicates: int
    lost_spans: list[tuple[float, float, int]]
    lost_by: Counter[str]
    still_subscribed: bool
    tasks: tuple[int, int]
    fds: tuple[int, int]

    def line(self) -> str:
        explained = sum(self.explained.values())
        return (
            f"CHAOS {self.topology}: seed={self.seed} {self.seconds:.0f}s "
            f"faults={sum(self.faults.values())} {dict(sorted(self.faults.items()))} | "
            f"writes acked={self.acked} lost={self.lost} explained={explained} "
            f"{dict(self.explained)} unexplained={len(self.unexplained)} | "
            f"not-executed-but-present={len(self.executed_but_reported_not)} "
            f"unknown-outcome={self.unknown_outcome} (applied {self.unknown_applied}) | "
            f"errors={dict(sorted(self.errors.items()))} untyped={len(self.untyped)} | "
            f"longest stall={self.longest:.2f}s ({self.longest_op}) "
            f"over {OP_BOUND:.0f}s bound={self.over_bound} | reads={self.reads} "
            f"bad={self.bad_reads} | pubsub published={self.published} "
            f"received={self.received} gaps={self.gaps} (in disconnect windows "
            f"{self.gaps_explained}) dup={self.duplicates} subscribed={self.still_subscribed} | "
            f"tasks {self.tasks[0]}->{self.tasks[1]} fds {self.fds[0]}->{self.fds[1]}"
        )

    def problems(self) -> list[str]:
        found = []
        if self.unexplained:
            spans = ", ".join(f"{a:.2f}s..{b:.2f}s: {n}" for a, b, n in self.lost_spans[:10])
            found.append(f"{len(self.unexplained)} acknowledged writes lost without a "
                         f"fault that explains them (acked at, from the first fault: {spans}; "
                         f"pool address when acked: {dict(self.lost_by)}), "
                         f"e.g. {self.unexplained[:3]}")
        if self.executed_but_reported_not:
            found.append(f"{len(self.executed_but_reported_not)} writes reported "
                         f"may_have_executed=False were applied: "
                         f"{self.executed_but_reported_not[:5]}")
        if self.untyped:
            found.append(f"untyped errors: {self.untyped[:5]}")
        if self.over_bound:
            found.append(f"{self.over_bound} operations waited longer than {OP_BOUND}s")
        if self.bad_reads:
            found.append(f"{self.bad_reads} reads returned a value the key never had")
        if self.gaps_unexplained:
            found.append(f"{len(self.gaps_unexplained)} messages missing outside any "
                         f"reported disconnect: {self.gaps_unexplained[:10]}")
        if self.duplicates:
            found.append(f"{self.duplicates} messages delivered twice")
        if not self.still_subscribed:
            found.append("the subscriber is no longer subscribed")
        if self.tasks[1] > self.tasks[0]:
            found.append(f"tasks leaked: {self.tasks[0]} -> {self.tasks[1]}")
        if self.fds[1] > self.fds[0]:
            found.append(f"file descriptors leaked: {self.fds[0]} -> {self.fds[1]}")
        return found


def gap_windows(
    faults: FaultLog, events: PubSubEvents, grace: float = 0.5,
    bus_faults: tuple[str, ...] = (),
) -> list[tuple[float, float]]:
    """Where messages may go missing: from the fault that cut the subscriber off to
    the pool's report that its subscriptions are back (or were moved to a new
    master), as the pool itself logs them."""

    def cause(moment: float) -> float:
        starts = [f.start for f in faults.faults if f.start <= moment]
        return max(starts) if starts else moment - 1.0

    windows = []
    for lost in events.lost:
        back = [t for t in events.back if t >= lost]
        windows.append((cause(lost) - grace, (min(back) if back else lost + 30.0) + grace))
    for back_at in events.back:
        windows.append((cause(back_at) - grace, back_at + grace))
    # Redis Cluster forwards PUBLISH over the cluster bus at most once: a node
    # that dies or stops breaks bus links, and messages in flight on them are
    # dropped without any client connection going down.
    for fault in faults.faults:
        if fault.kind in bus_faults:
            windows.append((fault.start - grace, fault.end + grace))
    return windows


async def account(
    topology: str, seed: int, seconds: float, pool: Any, workload: Workload,
    faults: FaultLog, events: PubSubEvents, still_subscribed: bool,
    tasks: tuple[int, int], fds: tuple[int, int], bus_faults: tuple[str, ...] = (),
) -> Report:
    stats = workload.stats
    values = await read_back(pool, stats.acked)
    lost = [k for k, v in values.items() if v != k.encode()]
    explained: Counter[str] = Counter()
    unexplained = []
    for key in lost:
        why = faults.explain(stats.acked[key], workload.slot_of(key))
        if why is None:
            unexplained.append(key)
        else:
            explained[why] += 1
    absent = await read_back(pool, stats.not_executed)
    applied_anyway = [k for k, v in absent.items() if v is not None]
    unknown = await read_back(pool, stats.unknown)
    windows = gap_windows(faults, events, bus_faults=bus_faults)
    missing = [s for s in stats.published if s not in stats.received]
    gaps_unexplained = [
        s for s in missing if not any(a <= stats.published[s] <= b for a, b in windows)
    ]
    spans: list[tuple[float, float, int]] = []
    origin = faults.faults[0].start if faults.faults else 0.0
    for moment in sorted(stats.acked[k] - origin for k in unexplained):
        if spans and moment - spans[-1][1] < 0.5:
            spans[-1] = (spans[-1][0], moment, spans[-1][2] + 1)
        else:
            spans.append((moment, moment, 1))
    return Report(
        topology=topology, lost_spans=spans,
        lost_by=Counter(str(stats.acked_by.get(k)) for k in unexplained),
        seed=seed, seconds=seconds, faults=faults.counts(),
        acked=len(stats.acked), lost=len(lost), explained=explained, unexplained=unexplained,
        executed_but_reported_not=applied_anyway, unknown_outcome=len(stats.unknown),
        unknown_applied=sum(1 for v in unknown.values() if v is not None),
        errors=stats.errors, untyped=stats.untyped, over_bound=stats.over_bound,
        longest=stats.longest, longest_op=stats.longest_op, reads=stats.reads,
        bad_reads=stats.bad_reads, published=len(stats.published),
        received=len([s for s in stats.received if s < 10**9]), gaps=len(missing),
        gaps_explained=len(missing) - len(gaps_unexplained), gaps_unexplained=gaps_unexplained,
        duplicates=stats.duplicates, still_subscribed=still_subscribed, tasks=tasks, fds=fds,
    )
