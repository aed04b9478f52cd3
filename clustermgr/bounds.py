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

import math
from typing import Any, Final

from .options import DEFAULT, Default, seconds

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


def _word(arg: Any) -> str | None:
    if isinstance(arg, bytes):
        return arg.decode("latin-1").upper()
    return arg.upper() if isinstance(arg, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, (bytes, str)):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def blocking_wait(name: bytes, args: tuple[Any, ...]) -> float | None:
    """Seconds the server may hold blocking command ``name`` (canonical upper case).

    ``math.inf`` for a timeout of 0 (wait forever), ``None`` when the
    arguments hold no usable timeout (the server then answers at once, with
    a reply or an error, and the ordinary reply bound applies).
    """
    if name in (b"XREAD", b"XREADGROUP"):
        position = None
        for index, arg in enumerate(args):  # options come before STREAMS
            word = _word(arg)
            if word == "STREAMS":
                break
            if word == "BLOCK":
                position = index
        if position is None or position + 1 >= len(args):
            return None
        raw, unit = args[position + 1], 1000
    else:
        where = _TIMEOUT_AT.get(name)
        if where is None or not args:
            return None
        raw, unit = args[where[0]], where[1]
    timeout = _number(raw)
    if timeout is None:
        return None
    return math.inf if timeout == 0 else timeout / unit
