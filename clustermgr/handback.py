"""The hand-back contract: what a connection needs before it is shared again.

A connection goes back to shared use only in its pool's known state: no
replies pending, the pool's db selected, the pool's credentials and
READONLY mode, no MULTI, no WATCH, not subscribed, not blocked.
:func:`judge` is the one place that decides, from a connection's
:class:`ConnectionState`, whether it is clean, can be reset (the commands to
send), or must be closed; :func:`restore` runs a reset and confirms it.
Every release path of every pool goes through these two functions.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ._timeout import timeout as _timeout
from .errors import RedisError

__all__ = ["Action", "ConnectionState", "HandBack", "KnownState", "judge", "restore"]

# Reset rounds: wait out pending replies, fix the state they left, confirm clean.
_ROUNDS = 3


class Action(enum.Enum):
    """What a returned connection needs."""

    CLEAN = "clean"
    RESET = "reset"
    CLOSE = "close"


class ConnectionState(NamedTuple):
    """What the client knows of a connection's server-side state, as confirmed by replies.

    A named tuple: taken on every release, it must be cheap to build.

    ``db``, ``readonly`` and ``credentials`` change only on a confirmed reply;
    ``in_transaction`` and ``watching`` are set as soon as MULTI/WATCH is sent
    (an unknown outcome counts as dirty).
    """

    closed: bool
    tracked: bool
    in_flight: int
    blocking: int
    subscribed: bool
    in_transaction: bool
    watching: bool
    db: int
    readonly: bool
    credentials: tuple[str | None, str] | None = None

    def __repr__(self) -> str:  # never show the password
        shown = self._replace(credentials=self.credentials and (self.credentials[0], "***"))
        return "ConnectionState" + tuple.__repr__(tuple(shown))


@dataclass(frozen=True, slots=True)
class KnownState:
    """The state a pool's connections are in when shared."""

    db: int = 0
    readonly: bool = False
    credentials: tuple[str | None, str] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class HandBack:
    """The verdict on a returned connection: ``action``, with ``commands`` for a reset."""

    action: Action
    reason: str = ""
    commands: tuple[tuple[Any, ...], ...] = field(default=(), repr=False)


_CLEAN = HandBack(Action.CLEAN)


def judge(state: ConnectionState, known: KnownState) -> HandBack:
    """Decide clean / reset / close for a connection in ``state`` returning to ``known``."""
    if state.closed:
        return HandBack(Action.CLOSE, "closed")
    if not state.tracked:
        return HandBack(Action.CLOSE, "a transaction changed its state in a way not known")
    if state.subscribed:
        return HandBack(Action.CLOSE, "subscribed")
    if state.blocking:
        return HandBack(Action.CLOSE, "a blocking command is still pending")
    if state.credentials != known.credentials and known.credentials is None:
        return HandBack(Action.CLOSE, "authenticated as another user")
    commands: list[tuple[Any, ...]] = []
    reasons: list[str] = []
    if state.in_transaction:
        commands.append((b"DISCARD",))
        reasons.append("MULTI")
    if state.watching:
        commands.append((b"UNWATCH",))
        reasons.append("WATCH")
    if state.credentials != known.credentials and known.credentials is not None:
        username, password = known.credentials
        commands.append((b"AUTH", username, password) if username else (b"AUTH", password))
        reasons.append("credentials")
    if state.db != known.db:
        commands.append((b"SELECT", known.db))
        reasons.append(f"db {state.db}")
    if state.readonly != known.readonly:
        commands.append((b"READONLY",) if known.readonly else (b"READWRITE",))
        reasons.append("READONLY" if state.readonly else "READWRITE")
    if state.in_flight and not commands:
        # Outstanding replies: their outcome (a SELECT, say) is not known yet.
        commands.append((b"PING",))
        reasons.append(f"{state.in_flight} replies pending")
    if not commands:
        return _CLEAN
    return HandBack(Action.RESET, ", ".join(reasons), tuple(commands))


class Resettable(Protocol):
    """What :func:`restore` needs of a connection."""

    @property
    def state(self) -> ConnectionState:
        """The connection's tracked state."""

    def execute(self, command: bytes | str, *args: Any, encoding: Any = ...) -> Any:
        """Send one command; a future of its reply."""


async def restore(conn: Resettable, known: KnownState, *, timeout: float) -> bool:
    """Send the reset :func:`judge` asks for until ``conn`` is clean; False: close it.

    Each round waits for the replies of its reset commands (and so for every
    reply pending before them); the next verdict is taken on confirmed state.
    False when a round fails, the connection is lost, or ``timeout`` passes.
    """
    try:
        async with _timeout(timeout):
            for _ in range(_ROUNDS):
                verdict = judge(conn.state, known)
                if verdict.action is not Action.RESET:
                    return verdict.action is Action.CLEAN
                pending = [conn.execute(*command, encoding=None) for command in verdict.commands]
                await asyncio.gather(*pending, return_exceptions=True)
    except (asyncio.TimeoutError, RedisError):
        return False
    return judge(conn.state, known).action is Action.CLEAN
