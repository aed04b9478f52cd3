"""What aioredis 1.3.1's 2019 test suite needs from today's pytest and async-timeout."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import async_timeout
import pytest


class _Timeout:
    """async-timeout 3.x's ``timeout()``: usable with ``with`` inside a task, and ``async with``."""

    def __init__(self, delay: float | None) -> None:
        self._delay = delay
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False

    def _start(self) -> None:
        if self._delay is not None:
            task = asyncio.current_task()
            assert task is not None
            self._handle = asyncio.get_running_loop().call_later(self._delay, self._fire, task)

    def _fire(self, task: asyncio.Task[Any]) -> None:
        self._fired = True
        task.cancel()

    def _stop(self, exc_type: type[BaseException] | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if exc_type is asyncio.CancelledError and self._fired:
            raise asyncio.TimeoutError

    def __enter__(self) -> _Timeout:
        self._start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        self._stop(exc_type)

    async def __aenter__(self) -> _Timeout:
        self._start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop(exc_type)


def install_shims() -> None:
    """``pytest.yield_fixture`` and a sync-capable ``async_timeout.timeout``."""
    pytest.yield_fixture = pytest.fixture  # type: ignore[attr-defined]
    async_timeout.timeout = _Timeout  # type: ignore[assignment,misc]
