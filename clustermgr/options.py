"""The one place that checks the options given to a factory, before anything connects.

Every factory (``create_connection``, ``create_pool``, ``create_cluster_pool``,
``create_sentinel``, ``create_sentinel_pool``) and the classes behind them pass
their options to :func:`check_options`, which looks each one up by name in
one table and refuses a bad value with :class:`InvalidOptionError` (a
``ValueError``) or, for a value of the wrong type, :class:`OptionTypeError`
(also a ``TypeError``). Both carry the option's name in ``option``.

URL options (``?timeout=``, ``?encoding=``, ``/db``) are checked by the same
functions from :mod:`clustermgr.address`.
"""

from __future__ import annotations

import codecs
import math
import ssl as ssl_module
from collections.abc import Callable
from typing import Any, Final

from .errors import ArgumentError, ArgumentTypeError, RedisError

__all__ = [
    "DEFAULT", "Default", "InvalidOptionError", "OptionTypeError", "check_class", "check_db",
    "check_options", "seconds",
]


class InvalidOptionError(RedisError, ArgumentError):
    """An option a factory cannot use; ``option`` names it."""

    def __init__(self, message: str, *, option: str) -> None:
        super().__init__(message)
        self.option = option

    def __reduce__(self) -> Any:
        """Pickle with ``option`` (it is a keyword-only argument)."""
        return (_rebuild, (type(self), str(self), self.option))


def _rebuild(cls: type[InvalidOptionError], message: str, option: str) -> InvalidOptionError:
    return cls(message, option=option)


class OptionTypeError(InvalidOptionError, ArgumentTypeError):
    """An option of the wrong type (``ssl="yes"``, ``db="1"``)."""


class Default:
    """The type of :data:`DEFAULT`: an option left out (``None`` turns a bound off)."""

    _instance: Default | None = None

    def __new__(cls) -> Default:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"

    def __reduce__(self) -> str:
        return "DEFAULT"


#: "Not given": the option's default applies.
DEFAULT: Final = Default()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def seconds(name: str, value: Any, *, optional: bool = True) -> None:
    """Refuse ``value`` unless it is finite seconds above 0 (or None when ``optional``).

    :data:`DEFAULT` (left out) always passes: the option's default applies.
    """
    if value is DEFAULT or (value is None and optional):
        return
    if not _is_number(value):
        kind = "a positive number of seconds" + (" or None" if optional else "")
        raise OptionTypeError(f"{name} must be {kind}, got {value!r}", option=name)
    if not (math.isfinite(value) and value > 0):
        kind = "a positive number of seconds" + (" or None" if optional else "")
        raise InvalidOptionError(f"{name} must be {kind}, got {value!r}", option=name)


def _required_seconds(name: str, value: Any) -> None:
    seconds(name, value, optional=False)


def _integer(name: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionTypeError(f"{name} must be an int >= {minimum}, got {value!r}", option=name)
    if value < minimum:
        raise InvalidOptionError(f"{name} must be an int >= {minimum}, got {value!r}", option=name)


def check_db(db: Any) -> int:
    """``db`` if it is a db index, else :class:`OptionTypeError` / :class:`InvalidOptionError`."""
    if isinstance(db, bool) or not isinstance(db, int):
        raise OptionTypeError(f"db must be an int, got {db!r}", option="db")
    if db < 0:
        raise InvalidOptionError(f"db must be 0 or more, got {db!r}", option="db")
    return db


def _db(name: str, value: Any) -> None:
    if value is not None:
        check_db(value)


def _encoding(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise OptionTypeError(f"{name} must be a codec name or None, got {value!r}", option=name)
    try:
        codecs.lookup(value)
    except LookupError:
        raise InvalidOptionError(f"{name} {value!r} is not a known codec", option=name) from None


def _tls(name: str, value: Any) -> None:
    if value is None or isinstance(value, (bool, ssl_module.SSLContext)):
        return
    raise OptionTypeError(
        f"{name} must be True, False, None or an ssl.SSLContext, got {value!r}", option=name
    )


def _text(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, (str, bytes)):
        raise OptionTypeError(f"{name} must be a str or None, got {type(value).__name__}",
                              option=name)
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # the value is not shown: it may be a secret
            raise InvalidOptionError(f"{name} is not UTF-8 text", option=name) from None


def _str(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise OptionTypeError(f"{name} must be a str or None, got {type(value).__name__}",
                              option=name)


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise OptionTypeError(f"{name} must be True or False, got {value!r}", option=name)


def _callable(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise OptionTypeError(f"{name} must be callable or None, got {value!r}", option=name)


def _not_negative_seconds(name: str, value: Any) -> None:
    if not _is_number(value):
        raise OptionTypeError(f"{name} must be a number of seconds >= 0, got {value!r}",
                              option=name)
    if not (math.isfinite(value) and value >= 0):
        raise InvalidOptionError(f"{name} must be a number of seconds >= 0, got {value!r}",
                                 option=name)


def check_class(name: str, value: Any, base: type) -> None:
    """Refuse ``value`` unless it is None or a subclass of ``base`` (:class:`OptionTypeError`)."""
    if value is not None and not (isinstance(value, type) and issubclass(value, base)):
        raise OptionTypeError(
            f"{name} must be a {base.__name__} subclass, got {value!r}", option=name
        )


def _delay_range(name: str, value: Any) -> None:
    if not (isinstance(value, tuple) and len(value) == 2 and all(map(_is_number, value))):
        raise OptionTypeError(
            f"{name} must be a (first, cap) pair of seconds, got {value!r}", option=name
        )
    first, cap = value
    if not (math.isfinite(first) and math.isfinite(cap) and 0 <= first <= cap):
        raise InvalidOptionError(
            f"{name} must be (first, cap) with 0 <= first <= cap, got {value!r}", option=name
        )


_Check = Callable[[str, Any], None]

#: Option name -> its check. The option names are those of the factories.
_CHECKS: dict[str, _Check] = {
    **dict.fromkeys(
        ("timeout", "create_connection_timeout", "acquire_timeout", "read_timeout",
         "role_check_interval", "period", "connect_timeout"),
        seconds,
    ),
    **dict.fromkeys(
        ("retry_timeout", "sentinel_timeout", "failover_timeout",
         "rediscover_interval", "poll_interval", "node_timeout", "hold_interval", "margin"),
        _required_seconds,
    ),
    "minsize": lambda name, value: _integer(name, value, 0),
    "maxsize": lambda name, value: _integer(name, value, 1),
    "max_redirects": lambda name, value: _integer(name, value, 0),
    "max_reply_size": lambda name, value: _integer(name, value, 1, optional=True),
    "query_nodes": lambda name, value: _integer(name, value, 1),
    "replicas": lambda name, value: _integer(name, value, 1),
    "max_attempts": lambda name, value: _integer(name, value, 1),
    "min_interval": _not_negative_seconds,
    "max_retries": lambda name, value: _integer(name, value, 0, optional=True),
    "db": _db,
    "encoding": _encoding,
    "ssl": _tls,
    "sentinel_ssl": _tls,
    **dict.fromkeys(
        ("username", "password", "name", "sentinel_username", "sentinel_password"), _text
    ),
    "early_release": _flag,
    "lazy": _flag,
    "client_az": _str,  # compared with the zones servers report (str)
    **dict.fromkeys(("on_connect", "address_remap", "credential_provider"), _callable),
    "parser": _callable,
    "reconnect_delay": _delay_range,
}


def check_options(**options: Any) -> None:
    """Refuse the first option whose value cannot be used (see the module docstring).

    Also refuses ``minsize`` above ``maxsize`` when both are given.
    """
    for name, value in options.items():
        _CHECKS[name](name, value)
    minsize, maxsize = options.get("minsize"), options.get("maxsize")
    if minsize is not None and maxsize is not None and minsize > maxsize:
        raise InvalidOptionError(
            f"minsize ({minsize}) must not exceed maxsize ({maxsize})", option="minsize"
        )
