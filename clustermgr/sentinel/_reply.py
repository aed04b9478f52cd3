"""The awaitable :meth:`SentinelPool.execute` returns on its fast path.

It awaits the master pool's future directly (no task, no extra loop turn) and
only when that fails with an error that proves the command was not executed
(READONLY, refused connection, connection closed before the write, wrong
ROLE) does it ask the owner to rediscover and run the command again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any

from ..errors import (
    ConnectError,
    ConnectionClosedError,
    PoolClosedError,
    ReadOnlyError,
)
from .errors import RoleMismatchError

if TYPE_CHECKING:
    from ..pool import ConnectionsPool
    from .pool import SentinelPool

__all__ = ["RETRYABLE", "SentinelReply"]

#: Errors after which the master may have changed. Retried only when the
#: error's ``may_have_executed`` is False.
RETRYABLE = (ReadOnlyError, ConnectionClosedError, ConnectError, RoleMismatchError, PoolClosedError)


class SentinelReply:
    """Awaitable reply of one command sent through a :class:`SentinelPool`."""

    __slots__ = ("_args", "_command", "_future", "_kwargs", "_owner", "_pool")

    def __init__(
        self,
        owner: SentinelPool,
        pool: ConnectionsPool,
        future: Awaitable[Any],
        command: bytes | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._owner = owner
        self._pool = pool
        self._future = future
        self._command = command
        self._args = args
        self._kwargs = kwargs

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            return (yield from self._future.__await__())
        except RETRYABLE as exc:
            owner = self._owner
            owner._report_error(self._pool, exc)
            if exc.may_have_executed or not owner._may_retry():
                raise
            retry = owner._execute_retrying(self._command, self._args, self._kwargs, 1)
            return (yield from retry.__await__())
