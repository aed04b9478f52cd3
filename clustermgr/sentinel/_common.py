"""Small things every sentinel module uses: the address type, its text, the
logger, and a set of background tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from ..address import address_text

__all__ = ["Address", "Tasks", "address_text", "logger"]

Address = tuple[str, int]

logger = logging.getLogger("clustermgr.sentinel")


class Tasks:
    """Background tasks of one owner: kept referenced, cancelled and awaited on close."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in a task kept until it finishes."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel(self) -> None:
        """Cancel every task still running."""
        for task in self._tasks:
            task.cancel()

    async def wait(self) -> None:
        """Wait until every task (but the calling one) has finished."""
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
