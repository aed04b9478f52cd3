"""Helpers for the sentinel tests: a write load that records every acknowledged key."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from clustermgr.errors import RedisError


@dataclass
class WriteLoad:
    """``tasks`` writers setting fresh keys through ``pool`` until stopped."""

    pool: Any
    prefix: str
    tasks: int = 50
    acked: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ack_times: list[float] = field(default_factory=list)
    max_latency: float = 0.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _running: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        counter = itertools.count()
        for n in range(self.tasks):
            self._running.append(asyncio.ensure_future(self._writer(n, counter)))

    async def _writer(self, n: int, counter: itertools.count[int]) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            key = f"{self.prefix}:{n}:{next(counter)}"
            started = loop.time()
            try:
                reply = await self.pool.execute("SET", key, key)
            except RedisError as exc:
                self.errors[f"{type(exc).__name__}(may_have_executed={exc.may_have_executed})"] += 1
                await asyncio.sleep(0.01)
                continue
            now = loop.time()
            self.max_latency = max(self.max_latency, now - started)
            assert reply == b"OK"
            self.acked.append(key)
            self.ack_times.append(now)
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._running)

    def first_ack_after(self, moment: float) -> float | None:
        return next((t for t in self.ack_times if t >= moment), None)


async def missing_keys(pool: Any, keys: list[str]) -> list[str]:
    """Keys of ``keys`` absent from the server behind ``pool``."""
    missing: list[str] = []
    for start in range(0, len(keys), 500):
        batch = keys[start:start + 500]
        values = await pool.execute("MGET", *batch)
        missing += [k for k, v in zip(batch, values, strict=True) if v is None]
    return missing


def sets_on(server: Any) -> int:
    """SET calls the (real) server executed since it (re)started."""
    stats = server.info("commandstats").get("cmdstat_set", "calls=0")
    return int(stats.split("calls=", 1)[1].split(",", 1)[0])


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate()`` every 20 ms for at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
