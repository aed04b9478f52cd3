"""Parsing of server addresses: ``(host, port)``, unix paths and URLs.

Accepted forms::

    ("127.0.0.1", 6379)                      TCP
    "/var/run/redis.sock"                    unix socket
    "redis://[[user]:password@]host[:port][/db][?option=value]"
    "rediss://..."                           TLS
    "unix://[[user]:password@]/path/to.sock[?db=N]"
    "unix:/path/to.sock[?db=N]"              as urlunparse() and aioredis write it

Query options: ``db``, ``password``, ``username``, ``encoding``,
``timeout`` (connect timeout in seconds) and ``name`` (CLIENT SETNAME).
Anything else is rejected with :class:`InvalidAddressError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import RedisError

__all__ = [
    "DEFAULT_PORT", "InvalidAddressError", "ServerAddress", "address_text", "parse_address",
]

DEFAULT_PORT = 6379
_KNOWN_OPTIONS = frozenset({"db", "password", "username", "encoding", "timeout", "name"})


class InvalidAddressError(RedisError, ValueError):
    """An address or URL that cannot be used to reach a server."""


@dataclass(frozen=True)
class ServerAddress:
    """Where a server is and the connection options its URL carried.

    ``repr()`` hides the password so addresses can be logged.
    """

    host: str | None = None
    port: int | None = None
    path: str | None = None
    ssl: bool = False
    db: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    encoding: str | None = None
    timeout: float | None = None
    name: str | None = None

    @property
    def target(self) -> tuple[str, int] | str:
        """``(host, port)`` for TCP or the socket path for unix sockets."""
        if self.path is not None:
            return self.path
        assert self.host is not None and self.port is not None
        return (self.host, self.port)

    def with_defaults(self, **values: Any) -> ServerAddress:
        """Fill the options the address did not set from keyword arguments."""
        updates = {k: v for k, v in values.items() if v is not None and getattr(self, k) is None}
        return replace(self, **updates) if updates else self


def address_text(address: Any) -> str:
    """``host:port`` for a ``(host, port)`` pair, the path for a socket, ``?`` for None."""
    if isinstance(address, tuple) and len(address) == 2:
        return f"{address[0]}:{address[1]}"
    return "?" if address is None else str(address)


def parse_address(address: Any) -> ServerAddress:
    """Turn any accepted address form into a :class:`ServerAddress`.

    Raises :class:`InvalidAddressError` with the reason for anything else.
    """
    if isinstance(address, ServerAddress):
        return address
    if isinstance(address, (tuple, list)):
        return _parse_pair(address)
    if isinstance(address, bytes):
        address = address.decode()
    if not isinstance(address, str):
        raise InvalidAddressError(
            f"address must be (host, port), a unix socket path or a URL, not {address!r}"
        )
    if "://" in address or address.startswith("unix:"):
        return _parse_url(address)
    if address.startswith("/") or address.startswith("."):
        return ServerAddress(path=address)
    raise InvalidAddressError(
        f"address {address!r} is neither a URL (redis://, rediss://, unix://) nor a socket path"
    )


def _parse_pair(pair: tuple[Any, ...] | list[Any]) -> ServerAddress:
    if len(pair) != 2:
        raise InvalidAddressError(f"address tuple must be (host, port), got {pair!r}")
    host, port = pair
    if not isinstance(host, str) or not host:
        raise InvalidAddressError(f"host must be a non-empty string, got {host!r}")
    return ServerAddress(host=host, port=_port(port, pair))


def _port(value: Any, whole: Any) -> int:
    if isinstance(value, bool):
        raise InvalidAddressError(
            f"port must be an integer in 1..65535, got {value!r} in {whole!r}"
        )
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidAddressError(
            f"port must be an integer in 1..65535, got {value!r} in {whole!r}"
        ) from None
    if not 0 < port < 65536:
        raise InvalidAddressError(f"port must be an integer in 1..65535, got {port} in {whole!r}")
    return port


def _parse_url(url: str) -> ServerAddress:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unbalanced "["
        # urllib's message may quote the netloc, credentials included.
        detail = "" if "@" in url else f": {exc}"
        raise InvalidAddressError(f"malformed URL {_redact(url)!r}{detail}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise InvalidAddressError(
            f"unsupported URL scheme {parts.scheme!r} in {_redact(url)!r}; "
            "use redis://, rediss:// or unix://"
        )
    options: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _KNOWN_OPTIONS:
            raise InvalidAddressError(
                f"unknown URL option {key!r} in {_redact(url)!r}; "
                f"known: {', '.join(sorted(_KNOWN_OPTIONS))}"
            )
        options[key] = value
    username = unquote(parts.username) if parts.username else options.pop("username", None)
    password = unquote(parts.password) if parts.password else options.pop("password", None)
    options.pop("username", None)
    options.pop("password", None)
    if scheme == "unix":
        if not parts.path:
            raise InvalidAddressError(f"unix URL without a socket path: {_redact(url)!r}")
        db = _int_option(options.pop("db", None), "db", url)
        return ServerAddress(
            path=unquote(parts.path), db=db, username=username or None,
            password=password or None, **_common(options, url),
        )
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        # urllib's message quotes the port text, which is part of the password
        # when an unescaped "/" in it cut the userinfo short.
        detail = "" if "@" in url else f": {exc}"
        raise InvalidAddressError(f"bad port in {_redact(url)!r}{detail}") from None
    if not host:
        raise InvalidAddressError(f"URL has no host: {_redact(url)!r}")
    db_text = parts.path.lstrip("/")
    db = _int_option(db_text or options.pop("db", None), "db", url)
    options.pop("db", None)
    return ServerAddress(
        host=host,
        port=port or DEFAULT_PORT,
        ssl=scheme == "rediss",
        db=db,
        username=username or None,
        password=password or None,
        **_common(options, url),
    )


def _common(options: dict[str, Any], url: str) -> dict[str, Any]:
    timeout = options.get("timeout")
    result: dict[str, Any] = {
        "encoding": options.get("encoding") or None,
        "name": options.get("name") or None,
        "timeout": None,
    }
    if timeout:
        try:
            result["timeout"] = float(timeout)
        except ValueError:
            raise InvalidAddressError(
                f"timeout must be a number of seconds, got {timeout!r} in {_redact(url)!r}"
            ) from None
    return result


def _int_option(value: Any, name: str, url: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidAddressError(
            f"{name} must be a non-negative integer, got {value!r} in {_redact(url)!r}"
        ) from None
    if number < 0:
        raise InvalidAddressError(f"{name} must be non-negative, got {number} in {_redact(url)!r}")
    return number


def _redact(url: str) -> str:
    """The URL with its password replaced, for error messages."""
    scheme, sep, after = url.partition("://")
    try:
        parts = urlsplit(url)
        split_userinfo = "@" in after and "@" not in parts.netloc
    except ValueError:
        parts = urlsplit("")
        split_userinfo = "@" in after
    if split_userinfo:
        # A "/", "?" or "#" in the password cut the userinfo short (or the URL
        # does not parse): hide everything before the last "@".
        url = f"{scheme}{sep}***@{after.rpartition('@')[2]}"
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        url = parts._replace(netloc=netloc).geturl()
    if "password=" in url:
        head, _, tail = url.partition("password=")
        rest = tail.split("&", 1)
        url = head + "password=***" + ("&" + rest[1] if len(rest) > 1 else "")
    return url
