"""What commands wait on while a follower holds: the route, once there is one."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

from .._timeout import timeout as _timeout

__all__ = ["RouteGate"]

T = TypeVar("T")


class RouteGate(Generic[T]):
    """A future renewed at each hold, resolved at each install, failed on give-up or close.

    Waiters started before a hold keep the future they began with: a later
    hold does not make them wait again, an install resolves the newest one.
    """

    def __init__(self) -> None:
        self._future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def shut(self) -> None:
        """From now on, waiters wait for the next :meth:`open` (or :meth:`fail`)."""
        if self._future.done():
            self._future = asyncio.get_running_loop().create_future()

    def open(self, value: T) -> None:
        """Release the waiters with ``value``; later waiters get it at once."""
        self.shut()
        self._future.set_result(value)

    def fail(self, error: BaseException) -> None:
        """The waiters (if not released yet) fail with ``error``; nobody need be waiting."""
        if not self._future.done():
            self._future.set_exception(error)
            self._future.exception()

    async def wait(self, timeout: float) -> T:
        """The value, within ``timeout`` seconds (else :class:`asyncio.TimeoutError`)."""
        future = self._future
        async with _timeout(timeout):
            return await asyncio.shield(future)
