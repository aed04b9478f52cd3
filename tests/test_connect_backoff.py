"""Connect backoff shared by every command of a pool (one server, one window).

When opening a connection fails, the pool's other commands within a growing,
capped window fail fast with a ConnectError (nothing sent, so
``may_have_executed`` is false) instead of each opening a socket; the first
command after the window tries again, and a success resets the window.
Attempts are counted client-side, on the running loop's ``create_connection``.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from clustermgr import create_pool
from clustermgr.backoff import Backoff
from clustermgr.connectgate import ConnectGate
from clustermgr.errors import ConnectError
from clustermgr.testing import LocalStandalone


@pytest.fixture
def server() -> Iterator[LocalStandalone]:
    with LocalStandalone() as standalone:
        yield standalone


def _count_connects(monkeypatch: pytest.MonkeyPatch, port: int) -> list[float]:
    """Times of the running loop's connection attempts to ``port``."""
    loop = asyncio.get_running_loop()
    original = loop.create_connection
    attempts: list[float] = []

    async def counting(factory: Any, host: Any = None, port_: Any = None, **kw: Any) -> Any:
        if port_ == port:
            attempts.append(loop.time())
        return await original(factory, host, port_, **kw)

    monkeypatch.setattr(loop, "create_connection", counting)
    return attempts


async def test_commands_to_a_dead_server_share_its_connect_attempts(
    server: LocalStandalone, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = server.server
    pool = await create_pool(node.address, minsize=1, maxsize=4)
    try:
        assert await pool.execute(b"PING") == b"PONG"
        node.kill()
        await asyncio.sleep(0.05)  # the pool sees its connection close
        attempts = _count_connects(monkeypatch, node.port)
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []
        end = loop.time() + 0.6
        sent = 0
        while loop.time() < end:  # 20 commands every 10 ms, for 0.6 s
            results = await asyncio.gather(
                *(pool.execute(b"PING") for _ in range(20)), return_exceptions=True
            )
            sent += len(results)
            errors.extend(r for r in results if isinstance(r, BaseException))
            await asyncio.sleep(0.01)
        assert len(errors) == sent
        assert all(isinstance(e, ConnectError) for e in errors), {type(e) for e in errors}
        assert not any(getattr(e, "may_have_executed", False) for e in errors)
        # 0.05 s doubling: attempts at about 0, 0.05, 0.15, 0.35 s (+ one batch in flight).
        assert len(attempts) <= 4 * 4, (len(attempts), sent)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_single_server_pool_tries_again_after_the_window(
    server: LocalStandalone, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = server.server
    pool = await create_pool(node.address, minsize=0, maxsize=2)
    try:
        node.kill()
        attempts = _count_connects(monkeypatch, node.port)
        with pytest.raises(ConnectError):  # the first command tries
            await pool.execute(b"PING")
        assert len(attempts) == 1
        with pytest.raises(ConnectError):  # within the window: fails fast
            await pool.execute(b"PING")
        assert len(attempts) == 1
        node.restart()
        await asyncio.sleep(0.1)  # past the first window (at most 0.05 s)
        assert await pool.execute(b"PING") == b"PONG"  # the first after it tries again
        assert len(attempts) == 2
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="on 3.10 each failed command still leaves a cycle through its traceback's "
    "frames (about 20 objects each; not found yet)",
)
async def test_a_command_failed_by_the_window_leaves_no_garbage_cycle(
    server: LocalStandalone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command failed fast by the window is freed by reference counting alone: a
    failover fails hundreds of them a second (held commands retrying their dead
    node), and each cycle left (error, traceback, future) would wait for the
    garbage collector, whose full passes then pause the event loop for 10-30 ms."""
    monkeypatch.setattr("clustermgr.poolconnect.CONNECT_BACKOFF", Backoff(5.0, 5.0, 1.0))
    node = server.server
    pool = await create_pool(node.address, minsize=0, maxsize=2)
    node.kill()
    try:
        for _ in range(3):  # the first opens the window; the refused socket's garbage goes
            with pytest.raises(ConnectError):
                await pool.execute(b"PING")
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                with pytest.raises(ConnectError, match="connect backoff"):
                    await pool.execute(b"PING")
            assert gc.collect() == 0
        finally:
            gc.enable()
    finally:
        pool.close()
        await pool.wait_closed()


def test_gate_window_grows_is_capped_and_resets_on_success() -> None:
    now = [100.0]
    gate = ConnectGate(Backoff(base=0.05, cap=0.2, jitter=1.0), clock=lambda: now[0])
    gate.check()  # nothing failed yet: open
    gate.failed(ConnectError("refused"))
    with pytest.raises(ConnectError, match="refused"):
        gate.check()
    now[0] += 0.051
    gate.check()  # window over: one attempt may go
    for expected in (0.1, 0.2, 0.2):  # doubling, capped
        gate.failed(ConnectError("refused"))
        now[0] += expected - 0.001
        with pytest.raises(ConnectError):
            gate.check()
        now[0] += 0.002
        gate.check()
    gate.succeeded()
    gate.failed(ConnectError("refused"))
    now[0] += 0.051
    gate.check()  # back to the first window after a success
