"""What one connection's server-side state is, as the client knows it from replies.

:class:`StateTracker` sees every state command a connection sends (SELECT,
MULTI, EXEC, DISCARD, WATCH, UNWATCH, READONLY, READWRITE, AUTH) and returns
the hook the connection calls with its reply, whether or not anybody still
awaits it. Confirmed state (db, READONLY mode, credentials) changes on the
reply, or for a command queued inside MULTI when EXEC runs it; MULTI and
WATCH count from the moment they are sent, so an unknown outcome is dirty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ReplyError
from .protocol import to_text

__all__ = ["Hook", "StateTracker"]

Hook = Callable[[Any], None]


class StateTracker:
    """The tracked state of one connection (see the module docstring)."""

    __slots__ = (
        "_queued", "_watch_generation", "credentials", "db", "in_transaction", "readonly",
        "tracked", "watching",
    )

    def __init__(self) -> None:
        self.db = 0
        self.in_transaction = False
        self.watching = False
        self.readonly = False
        self.credentials: tuple[str | None, str] | None = None
        #: False once a transaction changed state in a way that is not known.
        self.tracked = True
        self._watch_generation = 0
        self._queued: list[Hook] = []  # state changes queued in MULTI, applied by EXEC

    def on_send(self, special: bytes, args: tuple[Any, ...]) -> Hook | None:
        """Note that ``special`` is being sent; the hook to call with its reply, or None."""
        if special == b"MULTI":
            self.in_transaction = True
            return None
        if special == b"WATCH":
            self.watching = True
            self._watch_generation += 1
            return None
        if special in (b"EXEC", b"DISCARD", b"UNWATCH"):
            if special == b"UNWATCH" and self.in_transaction:
                return None  # queued; EXEC or DISCARD unwatches anyway
            return self._ends_watch(special)
        hook = self._confirmed_change(special, args)
        if hook is not None and self.in_transaction:
            self._queued.append(hook)
            return None
        return hook

    def _ends_watch(self, special: bytes) -> Hook:
        """EXEC / DISCARD / UNWATCH: the hook that clears WATCH (and applies EXEC's state)."""
        queued: list[Hook] = []
        if special != b"UNWATCH":
            self.in_transaction = False
            queued, self._queued = self._queued, []
        executes = special == b"EXEC"
        generation = self._watch_generation

        def ended(reply: Any) -> None:
            if executes and queued and type(reply) is list:
                if any(isinstance(item, ReplyError) for item in reply):
                    self.tracked = False  # which state change failed is not known
                else:
                    for change in queued:
                        change(b"OK")
            if not isinstance(reply, ReplyError) and generation == self._watch_generation:
                self.watching = False

        return ended

    def _confirmed_change(self, special: bytes, args: tuple[Any, ...]) -> Hook | None:
        """The hook applying SELECT / READONLY / READWRITE / AUTH once confirmed."""
        if special == b"SELECT":
            if len(args) != 1:
                raise TypeError("SELECT takes exactly one argument: the db index")
            db = int(args[0])

            def selected(reply: Any) -> None:
                if not isinstance(reply, ReplyError):
                    self.db = db

            return selected
        if special in (b"READONLY", b"READWRITE"):
            readonly = special == b"READONLY"

            def mode_set(reply: Any) -> None:
                if not isinstance(reply, ReplyError):
                    self.readonly = readonly

            return mode_set
        if special == b"AUTH" and 1 <= len(args) <= 2:
            credentials = (
                (None, to_text(args[0])) if len(args) == 1
                else (to_text(args[0]), to_text(args[1]))
            )

            def authenticated(reply: Any) -> None:
                if not isinstance(reply, ReplyError):
                    self.credentials = credentials

            return authenticated
        return None
