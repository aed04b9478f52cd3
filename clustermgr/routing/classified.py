"""A command classified once: what it is, where it goes, how to resend it."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ..commands import CommandInfo
from ..pool import ConnectionsPool

__all__ = ["Classified", "ErrorSink"]


class ErrorSink(Protocol):
    """What a :class:`Classified` reports a failed reply to (its router)."""

    def _on_error(
        self, c: Classified, future: asyncio.Future[Any], error: BaseException
    ) -> bool: ...


class Classified:
    """One command, classified once: what it is, where it goes, how to resend it.

    Computed by the pool's ``execute`` and handed down unchanged: the error
    hook, the retry path and batches read it, and never look the command name
    up again. Calling it is the reply error hook of the node pool.
    """

    __slots__ = ("args", "command", "info", "kwargs", "pool", "router", "slot")

    def __init__(
        self,
        router: ErrorSink,
        command: bytes | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        info: CommandInfo | None,
        slot: int | None,
    ) -> None:
        self.router = router
        self.command = command
        self.args = args
        self.kwargs = kwargs
        self.info = info
        self.slot = slot
        #: The node pool of the last attempt (None before the first).
        self.pool: ConnectionsPool | None = None

    @property
    def readonly(self) -> bool:
        """True if the server flags the command read-only (safe to retry)."""
        info = self.info
        return info is not None and info.readonly

    @property
    def name(self) -> str:
        """The command's name, upper case, for messages."""
        info = self.info
        if info is not None and info.name:
            return info.name.upper()
        command = self.command
        text = command.decode(errors="replace") if isinstance(command, bytes) else command
        return text.upper()

    def __call__(
        self,
        future: asyncio.Future[Any],
        error: BaseException,
        command: Any,
        args: tuple[Any, ...],
        encoding: str | None,
    ) -> bool:
        """The node pool's error hook: True if the command is retried into ``future``."""
        if "encoding" not in self.kwargs:
            self.kwargs = {**self.kwargs, "encoding": encoding}
        return self.router._on_error(self, future, error)

    def __repr__(self) -> str:
        return f"<Classified {self.name} slot={self.slot}>"
