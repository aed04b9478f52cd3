"""The issue's scenarios, written once against :class:`~benchmarks.adapters.Adapter`.

Each scenario prepares its keys (untimed), warms the client up with the same
access pattern (untimed), then times its operations one by one with
``time.perf_counter_ns`` and returns a plain dict (see :func:`summarise`).
Errors raised by a client are counted by type and the run goes on; a ``GET``
that returns something other than the value written counts as an error too.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .adapters import Adapter
from .jobs import VALUE, TargetKind, keys
from .procstats import open_sockets, rss_bytes

__all__ = [
    "SCENARIOS", "SENTINEL_PREFIX", "Sample", "Scenario", "mixed_load", "populate", "summarise",
]

POPULATE_BATCH = 1000

Params = dict[str, Any]
Result = dict[str, Any]


@dataclass
class Sample:
    """Raw outcome of one timed phase."""

    latencies_ns: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ops: int = 0
    elapsed_ns: int = 0
    cpu_ns: int = 0
    """CPU time of this process (client only: the servers are other processes)."""
    _started: tuple[int, int] = (0, 0)

    def start(self) -> None:
        """Start the clocks of the timed phase (wall and process CPU)."""
        self._started = (time.perf_counter_ns(), time.process_time_ns())

    def stop(self) -> None:
        """Stop the clocks: ``elapsed_ns`` and ``cpu_ns`` since :meth:`start`."""
        wall, cpu = self._started
        self.elapsed_ns = time.perf_counter_ns() - wall
        self.cpu_ns = time.process_time_ns() - cpu

    def add_error(self, exc: BaseException | str, weight: int = 1) -> None:
        """Count an error by its type name (or the given label)."""
        self.errors[exc if isinstance(exc, str) else type(exc).__name__] += weight


def percentile(sorted_values: list[int], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 if empty)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return float(sorted_values[index])


def summarise(sample: Sample, latency_of: str) -> dict[str, Any]:
    """Ops/s, p50/p99 latency (ms), errors, sockets and RSS of one phase."""
    lat = sorted(sample.latencies_ns)
    elapsed = sample.elapsed_ns / 1e9
    return {
        "ops": sample.ops,
        "elapsed_s": round(elapsed, 4),
        "ops_per_sec": sample.ops / elapsed if elapsed > 0 else 0.0,
        "cpu_us_per_op": sample.cpu_ns / sample.ops / 1e3 if sample.ops else 0.0,
        "p50_ms": percentile(lat, 0.50) / 1e6,
        "p99_ms": percentile(lat, 0.99) / 1e6,
        "mean_ms": sum(lat) / len(lat) / 1e6 if lat else 0.0,
        "max_ms": lat[-1] / 1e6 if lat else 0.0,
        "latency_of": latency_of,
        "errors": sum(sample.errors.values()),
        "error_types": dict(sample.errors),
        "sockets": open_sockets(),
        "rss_mb": round(rss_bytes() / 2**20, 1),
    }


def _deadline(duration: float | None) -> int | None:
    return None if duration is None else time.perf_counter_ns() + int(duration * 1e9)


async def populate(adapter: Adapter, key_list: list[bytes]) -> None:
    """Write ``VALUE`` under every key, in batches (untimed setup)."""
    for start in range(0, len(key_list), POPULATE_BATCH):
        chunk = key_list[start : start + POPULATE_BATCH]
        await adapter.set_batch([(k, VALUE) for k in chunk])


async def _sequential_phase(
    adapter: Adapter, key_list: list[bytes], write: bool, deadline: int | None, sample: Sample
) -> int:
    """SET (or GET) each key in turn from one task; returns how many keys were done."""
    perf = time.perf_counter_ns
    set_, get = adapter.set, adapter.get
    lat = sample.latencies_ns
    done = 0
    for k in key_list:
        t0 = perf()
        try:
            if write:
                reply = VALUE
                await set_(k, VALUE)
            else:
                reply = await get(k)
        except Exception as exc:
            sample.add_error(exc)
        else:
            if reply != VALUE:
                sample.add_error("WrongReply")
            else:
                lat.append(perf() - t0)
                sample.ops += 1
        done += 1
        if deadline is not None and perf() > deadline:
            break
    return done


async def sequential(adapter: Adapter, params: Params, duration: float | None) -> Result:
    """One task: SET every key, then GET every key."""
    count = int(params["keys"])
    warm = keys(int(params["warmup"]), start=count)
    await _sequential_phase(adapter, warm, True, None, Sample())
    await _sequential_phase(adapter, warm, False, None, Sample())
    key_list = keys(count)
    sample = Sample()
    half = None if duration is None else duration / 2
    sample.start()
    done = await _sequential_phase(adapter, key_list, True, _deadline(half), sample)
    await _sequential_phase(adapter, key_list[:done], False, _deadline(half), sample)
    sample.stop()
    return summarise(sample, "op")


async def mixed_load(
    adapter: Adapter,
    key_list: list[bytes],
    tasks: int,
    total_ops: int,
    deadline: int | None,
) -> Sample:
    """``tasks`` tasks share ``total_ops`` operations, alternating SET and GET.

    Operation ``j`` touches ``key_list[j % len(key_list)]``; task ``i`` runs
    operations ``i, i + tasks, i + 2*tasks, ...``.
    """
    sample = Sample()
    perf = time.perf_counter_ns
    size = len(key_list)
    set_, get = adapter.set, adapter.get

    async def worker(first: int) -> None:
        lat = sample.latencies_ns
        for j in range(first, total_ops, tasks):
            if deadline is not None and perf() > deadline:
                return
            k = key_list[j % size]
            t0 = perf()
            try:
                if j & 1:
                    reply = await get(k)
                else:
                    reply = VALUE
                    await set_(k, VALUE)
            except Exception as exc:
                sample.add_error(exc)
                continue
            if reply != VALUE:
                sample.add_error("WrongReply")
                continue
            lat.append(perf() - t0)
            sample.ops += 1

    sample.start()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    sample.stop()
    return sample


async def concurrent(adapter: Adapter, params: Params, duration: float | None) -> Result:
    """``tasks`` concurrent tasks, GET/SET over a pre-populated key space."""
    tasks, total = int(params["tasks"]), int(params["ops"])
    key_list = keys(int(params["keyspace"]))
    await populate(adapter, key_list)
    await mixed_load(adapter, key_list, tasks, int(params["warmup"]), None)
    sample = await mixed_load(adapter, key_list, tasks, total, _deadline(duration))
    return summarise(sample, "op")


async def batched(adapter: Adapter, params: Params, duration: float | None) -> Result:
    """``ops`` SETs written in batches of ``batch`` (latency is per batch)."""
    total, size = int(params["ops"]), int(params["batch"])
    warm = keys(size * int(params["warmup_batches"]), start=total)
    for start in range(0, len(warm), size):
        await adapter.set_batch([(k, VALUE) for k in warm[start : start + size]])
    items = [(k, VALUE) for k in keys(total)]
    sample = Sample()
    perf = time.perf_counter_ns
    deadline = _deadline(duration)
    sample.start()
    for start in range(0, total, size):
        chunk = items[start : start + size]
        t0 = perf()
        try:
            await adapter.set_batch(chunk)
        except Exception as exc:
            sample.add_error(exc, len(chunk))
        else:
            sample.latencies_ns.append(perf() - t0)
            sample.ops += len(chunk)
        if deadline is not None and perf() > deadline:
            break
    sample.stop()
    return summarise(sample, f"batch of {size}")


async def gathered(adapter: Adapter, params: Params, duration: float | None) -> Result:
    """``ops`` SETs sent as ``asyncio.gather`` of ``batch`` single ``set`` calls."""
    total, size = int(params["ops"]), int(params["batch"])
    set_ = adapter.set
    warm = keys(size * int(params["warmup_batches"]), start=total)
    for start in range(0, len(warm), size):
        # Errors are counted in the timed phase (redis-py raises past its pool's cap).
        await asyncio.gather(*[set_(k, VALUE) for k in warm[start : start + size]],
                             return_exceptions=True)
    key_list = keys(total)
    sample = Sample()
    perf = time.perf_counter_ns
    deadline = _deadline(duration)
    sample.start()
    for start in range(0, total, size):
        chunk = key_list[start : start + size]
        t0 = perf()
        replies = await asyncio.gather(*[set_(k, VALUE) for k in chunk], return_exceptions=True)
        failed = [r for r in replies if isinstance(r, BaseException)]
        for exc in failed:
            sample.add_error(exc)
        sample.latencies_ns.append(perf() - t0)
        sample.ops += len(chunk) - len(failed)
        if deadline is not None and perf() > deadline:
            break
    sample.stop()
    return summarise(sample, f"gather of {size}")


ScenarioFn = Callable[[Adapter, dict[str, Any], "float | None"], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Scenario:
    """A named scenario: what it runs, on which target, with which sizes."""

    name: str
    title: str
    target: TargetKind
    run: ScenarioFn
    params: dict[str, int]
    scaled: tuple[str, ...]
    """Parameters multiplied by ``--scale`` / ``--quick``."""

    def sized(self, scale: float) -> dict[str, int]:
        """Parameters with the op counts scaled (never below 1)."""
        out = dict(self.params)
        for name in self.scaled:
            out[name] = max(1, round(out[name] * scale))
        if "batch" in out and "ops" in out:
            out["ops"] = max(out["batch"], out["ops"] // out["batch"] * out["batch"])
        return out


_CLUSTER: tuple[Scenario, ...] = (
    Scenario(
        "sequential", "one task, SET then GET, 10k keys", "cluster", sequential,
        {"keys": 10_000, "warmup": 500}, ("keys", "warmup"),
    ),
    Scenario(
        "concurrent", "200 tasks, GET/SET, 100k ops", "cluster", concurrent,
        {"tasks": 200, "ops": 100_000, "keyspace": 10_000, "warmup": 10_000},
        ("ops", "keyspace", "warmup"),
    ),
    Scenario(
        "batch", "100k SETs in batches of 1,000", "cluster", batched,
        {"ops": 100_000, "batch": 1_000, "warmup_batches": 5}, ("ops",),
    ),
    Scenario(
        "gather", "100k SETs as gathers of 1,000 set() calls", "cluster", gathered,
        {"ops": 100_000, "batch": 1_000, "warmup_batches": 5}, ("ops",),
    ),
)

SENTINEL_PREFIX = "sentinel-"


def _on_sentinel(scenario: Scenario) -> Scenario:
    """The same scenario on the sentinel group's master, reached through its sentinels."""
    return replace(scenario, name=SENTINEL_PREFIX + scenario.name,
                   title=f"sentinel master: {scenario.title}", target="sentinel")


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        *_CLUSTER,
        Scenario(
            "single", "single node, 200 tasks, GET/SET, 100k ops", "single", concurrent,
            {"tasks": 200, "ops": 100_000, "keyspace": 10_000, "warmup": 10_000},
            ("ops", "keyspace", "warmup"),
        ),
        *(_on_sentinel(s) for s in _CLUSTER),
    )
}
