"""Background tasks of one owner: kept referenced, cancelled and awaited on close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

__all__ = ["Tasks", "consume", "failed"]


def consume(future: asyncio.Future[Any]) -> None:
    """Mark a done future's exception retrieved (a done callback for fire-and-forget work)."""
    if not future.cancelled():
        future.exception()


def failed(error: BaseException) -> asyncio.Future[Any]:
    """A future already failed with ``error``: awaiting it raises, dropping it logs nothing.

    What a pool's ``execute`` returns once closed (aioredis 1.x's pool fails
    when awaited too, so ``gather(..., return_exceptions=True)`` collects it).
    """
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    consume(future)
    return future


class Tasks:
    """A set of tasks kept until each finishes; cancelled and awaited together."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in a task kept until it finishes."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        """Cancel every task still running."""
        for task in self._tasks:
            task.cancel()

    async def wait(self) -> None:
        """Wait until every task (but the calling one) has finished, new ones included."""
        while True:
            tasks = [t for t in self._tasks if t is not asyncio.current_task()]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)
