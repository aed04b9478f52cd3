"""Timeouts and bounds: the defaults, "not given" versus ``None``, blocking commands.

Nothing waits forever by default: connecting (with the handshake) is bounded
by :data:`CONNECT_TIMEOUT` and a connection owing replies that stays silent
for :data:`READ_TIMEOUT` is closed. A caller turns a bound off with an
explicit ``None``; leaving the option out (:data:`DEFAULT`) means the
default. A blocking command (BLPOP, XREAD BLOCK, WAIT, ...) is bounded by its
own timeout argument plus the reply bound (:func:`blocking_wait`), so a 30 s
BLPOP is not cut at 10 s, and a timeout of 0 (wait forever) is not bounded.
The table in ``docs/configuration.md`` ("Timeouts and bounds") lists them.
"""

from __future__ import annotations

from typing import Any, Final

from .options import DEFAULT, Default, seconds
from .timeoutarg import server_wait

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT",
    "READ_TIMEOUT",
    "ROUTED_CONNECT_TIMEOUT",
    "Default",
    "blocking_wait",
    "check_interval",
    "resolve",
    "within",
]

#: Seconds allowed to connect and run the handshake (AUTH, SELECT, SETNAME,
#: ``on_connect``, ROLE checks) together.
CONNECT_TIMEOUT: Final = 5.0
#: Seconds a connection owing replies may stay silent before it is closed.
READ_TIMEOUT: Final = 10.0
#: The connect bound of the routed pools (cluster nodes, sentinel-named
#: servers): a node that cannot be reached sooner is down for the command,
#: which is retried or held within its own budget.
ROUTED_CONNECT_TIMEOUT: Final = 2.0


def check_interval(read_timeout: float) -> float:
    """How often a connection's stall check runs for reply bound ``read_timeout``."""
    return min(read_timeout / 4, 1.0)


def within(read_timeout: float | None, budget: float) -> float:
    """The reply bound to give connections whose commands must end within ``budget`` s.

    At most ``read_timeout``, and small enough that the stall check (every
    :func:`check_interval`) fires by ``budget``.
    """
    cap = budget - min(budget / 5, 1.0)
    return cap if read_timeout is None else min(read_timeout, cap)


def resolve(name: str, value: Any, default: float | None) -> float | None:
    """``value`` in seconds: ``default`` for :data:`DEFAULT`, ``None`` for no bound.

    Anything else must be a finite number above 0; otherwise
    :class:`~clustermgr.options.InvalidOptionError` (a ValueError;
    :class:`~clustermgr.options.OptionTypeError`, also a TypeError, for a
    non-number) naming the option.
    """
    if value is DEFAULT:
        return default
    seconds(name, value)
    return None if value is None else float(value)


# Where each blocking command keeps its timeout: an index into the arguments
# (negative from the end) and the unit (1: seconds, 1000: milliseconds).
_TIMEOUT_AT: dict[bytes, tuple[int, int]] = {
    b"BLPOP": (-1, 1), b"BRPOP": (-1, 1), b"BRPOPLPUSH": (-1, 1), b"BLMOVE": (-1, 1),
    b"BZPOPMIN": (-1, 1), b"BZPOPMAX": (-1, 1), b"BLMPOP": (0, 1), b"BZMPOP": (0, 1),
    b"WAIT": (-1, 1000), b"WAITAOF": (-1, 1000),
}


#: XREAD options before STREAMS and how many values each takes (as the server parses them).
_XREAD_OPTIONS: dict[bytes, int] = {b"BLOCK": 1, b"COUNT": 1, b"GROUP": 2, b"NOACK": 0}


def _word(arg: Any) -> bytes | None:
    """An argument as ASCII-upper-cased bytes (the server's ``strcasecmp``), if text."""
    if isinstance(arg, str):
        arg = arg.encode()
    return bytes(arg).upper() if isinstance(arg, (bytes, bytearray, memoryview)) else None


def _xread_wait(name: bytes, args: tuple[Any, ...]) -> float | None:
    """The BLOCK wait of XREAD/XREADGROUP, options read left to right as the server does."""
    wait = None
    index = 0
    while index < len(args):
        word, more = _word(args[index]), len(args) - index - 1
        if word == b"STREAMS" and more:
            return wait
        takes = _XREAD_OPTIONS.get(word or b"")
        if takes is None or more < takes:
            return None  # the server's syntax error, at once
        if word == b"BLOCK":
            wait = server_wait(name, args[index + 1], 1000)
        index += 1 + takes
    return None


def blocking_wait(name: bytes, args: tuple[Any, ...]) -> float | None:
    """Seconds the server may hold blocking command ``name`` (canonical upper case).

    ``math.inf`` for a timeout of 0 (wait forever), ``None`` when the
    arguments hold no timeout (the server then answers at once, with a reply
    or an error, and the ordinary reply bound applies). A timeout in a form
    the server refuses raises :class:`~clustermgr.errors.TimeoutArgumentError`
    (:mod:`clustermgr.timeoutarg` reads it as the server does).
    """
    if name in (b"XREAD", b"XREADGROUP"):
        return _xread_wait(name, args)
    where = _TIMEOUT_AT.get(name)
    if where is None or not args:
        return None
    return server_wait(name, args[where[0]], where[1])
