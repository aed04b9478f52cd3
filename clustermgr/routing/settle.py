"""A background run that settles a caller's future (the routed retry path's task).

The caller keeps the future it was given; a task runs ``run(*args)`` and puts
its result or error there. Cancelling the future cancels the task; a task
ended another way (cancelled before its first step, by close) fails the
future with ``closed_error()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

__all__ = ["settle_in_background"]


def settle_in_background(
    spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]], future: asyncio.Future[Any],
    closed_error: Callable[[], BaseException], run: Callable[..., Awaitable[Any]], *args: Any,
) -> None:
    """Settle ``future`` with ``run(*args)``, awaited in a task made by ``spawn``."""
    task = spawn(_settle(future, closed_error, run, args))
    future.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
    task.add_done_callback(partial(_ended, future, closed_error))


async def _settle(
    future: asyncio.Future[Any], closed_error: Callable[[], BaseException],
    run: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
) -> None:
    try:
        result = await run(*args)
    except asyncio.CancelledError:
        if not future.done():
            future.set_exception(closed_error())
        del future  # the traceback keeps this frame: no cycle back to the future
        raise
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        del future, args  # the error's traceback keeps this frame: no cycle through it
        return
    if not future.done():
        future.set_result(result)


def _ended(
    future: asyncio.Future[Any], closed_error: Callable[[], BaseException],
    task: asyncio.Task[None],
) -> None:
    """Whatever ended the task (a cancel before its first step, an error
    :func:`_settle` did not catch) reaches the caller's future."""
    if future.done():
        return
    error = None if task.cancelled() else task.exception()
    future.set_exception(error if error is not None else closed_error())
