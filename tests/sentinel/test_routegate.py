"""RouteGate alone: what held commands wait on, renewed at each hold."""

from __future__ import annotations

import asyncio
import gc

import pytest

from clustermgr.sentinel.routegate import RouteGate


async def test_waiters_get_the_value_opened_and_later_ones_at_once() -> None:
    gate: RouteGate[str] = RouteGate()
    waiter = asyncio.ensure_future(gate.wait(1.0))
    await asyncio.sleep(0)
    assert not waiter.done()
    gate.open("a")
    assert await waiter == "a"
    assert await gate.wait(1.0) == "a"


async def test_a_shut_gate_waits_for_the_next_open() -> None:
    gate: RouteGate[str] = RouteGate()
    gate.open("a")
    gate.shut()
    waiter = asyncio.ensure_future(gate.wait(1.0))
    await asyncio.sleep(0)
    assert not waiter.done()
    gate.open("b")
    assert await waiter == "b"


async def test_wait_times_out_and_fail_ends_the_waiters() -> None:
    gate: RouteGate[str] = RouteGate()
    with pytest.raises(asyncio.TimeoutError):
        await gate.wait(0.01)
    waiter = asyncio.ensure_future(gate.wait(1.0))
    await asyncio.sleep(0)
    gate.fail(RuntimeError("gone"))
    with pytest.raises(RuntimeError, match="gone"):
        await waiter
    gate.fail(RuntimeError("again"))  # already failed: the first error stays
    with pytest.raises(RuntimeError, match="gone"):
        await gate.wait(1.0)


async def test_fail_with_nobody_waiting_reports_nothing() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        gate: RouteGate[str] = RouteGate()
        gate.fail(RuntimeError("unseen"))
        del gate
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert reported == []  # no "Future exception was never retrieved"
