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

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

from .options import InvalidOptionError, check_db, check_options

__all__ = [
    "DEFAULT_PORT",
    "InvalidAddressError",
    "ServerAddress",
    "address_text",
    "check_cluster_startup",
    "check_db",
    "parse_address",
    "redact_url",
    "shared_options",
]

DEFAULT_PORT = 6379
_KNOWN_OPTIONS = frozenset({"db", "password", "username", "encoding", "timeout", "name"})


class InvalidAddressError(InvalidOptionError):
    """An address or URL that cannot be used to reach a server.

    ``option`` is ``"address"``, or the URL option at fault (``"timeout"``,
    ``"encoding"``, ``"db"``).
    """

    def __init__(self, message: str, *, option: str = "address") -> None:
        super().__init__(message, option=option)


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
    """``host:port`` for a ``(host, port)`` pair, the path for a socket, ``?`` for None.

    A URL is shown with its secrets hidden (:func:`redact_url`).
    """
    if isinstance(address, tuple) and len(address) == 2:
        return f"{address[0]}:{address[1]}"
    return "?" if address is None else redact_url(str(address))


def parse_address(address: Any) -> ServerAddress:
    """Turn any accepted address form into a :class:`ServerAddress`.

    Raises :class:`InvalidAddressError` with the reason for anything else.
    """
    if isinstance(address, ServerAddress):
        return address
    if isinstance(address, (tuple, list)):
        return _parse_pair(address)
    if isinstance(address, bytes):
        try:
            address = address.decode()
        except UnicodeDecodeError:
            shown = redact_url(address.decode(errors="replace"))
            raise InvalidAddressError(f"address {shown!r} is not UTF-8 text") from None
    if not isinstance(address, str):
        raise InvalidAddressError(
            f"address must be (host, port), a unix socket path or a URL, not {address!r}"
        )
    _check_utf8(address)
    if "://" in address or address.startswith("unix:"):
        return _parse_url(address)
    if address.startswith("/") or address.startswith("."):
        return ServerAddress(path=address)
    raise InvalidAddressError(
        f"address {redact_url(address)!r} is neither a URL (redis://, rediss://, unix://) "
        "nor a socket path"
    )


def _check_utf8(text: str) -> None:
    """Refuse text that cannot be sent as UTF-8 (lone surrogates, as os.fsdecode() makes)."""
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            shown = redact_url(text.encode(errors="replace").decode())
            raise InvalidAddressError(f"address {shown!r} is not UTF-8 text") from None


def _parse_pair(pair: tuple[Any, ...] | list[Any]) -> ServerAddress:
    if len(pair) != 2:
        raise InvalidAddressError(f"address tuple must be (host, port), got {pair!r}")
    host, port = pair
    if not isinstance(host, str) or not host:
        raise InvalidAddressError(f"host must be a non-empty string, got {host!r}")
    _check_utf8(host)
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
        raise InvalidAddressError(f"malformed URL {redact_url(url)!r}{detail}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise InvalidAddressError(
            f"unsupported URL scheme {parts.scheme!r} in {redact_url(url)!r}; "
            "use redis://, rediss:// or unix://"
        )
    options: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _KNOWN_OPTIONS:
            raise InvalidAddressError(
                f"unknown URL option {key!r} in {redact_url(url)!r}; "
                f"known: {', '.join(sorted(_KNOWN_OPTIONS))}", option=key,
            )
        options[key] = value
    username = unquote(parts.username) if parts.username else options.pop("username", None)
    password = unquote(parts.password) if parts.password else options.pop("password", None)
    options.pop("username", None)
    options.pop("password", None)
    if scheme == "unix":
        if not parts.path:
            raise InvalidAddressError(f"unix URL without a socket path: {redact_url(url)!r}")
        db = _int_option(options.pop("db", None), "db", url)
        return ServerAddress(
            path=unquote(parts.path), db=db, username=username or None,
            password=password or None, **_common(options, url),
        )
    try:
        host = parts.hostname
        port = parts.port
        if port == 0:
            raise ValueError("Port out of range 1-65535")
    except ValueError as exc:
        # urllib's message quotes the port text, which is part of the password
        # when an unescaped "/" in it cut the userinfo short.
        detail = "" if "@" in url else f": {exc}"
        raise InvalidAddressError(f"bad port in {redact_url(url)!r}{detail}") from None
    if not host:
        raise InvalidAddressError(f"URL has no host: {redact_url(url)!r}")
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
                f"timeout must be a number of seconds, got {timeout!r} in {redact_url(url)!r}",
                option="timeout",
            ) from None
    try:
        check_options(timeout=result["timeout"], encoding=result["encoding"])
    except InvalidOptionError as exc:
        raise InvalidAddressError(f"{exc} in {redact_url(url)!r}", option=exc.option) from None
    return result


def _int_option(value: Any, name: str, url: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidAddressError(
            f"{name} must be a non-negative integer, got {value!r} in {redact_url(url)!r}",
            option=name,
        ) from None
    if number < 0:
        raise InvalidAddressError(
            f"{name} must be non-negative, got {number} in {redact_url(url)!r}", option=name
        )
    return number


_SECRET_KEYS = ("pass", "pwd", "secret", "token", "auth")
_QUERY_ITEM = re.compile(r"([^=&#]*)=([^&#]*)")


def redact_url(text: str) -> str:
    """``text`` (a URL, an address or any text holding one) with every secret hidden.

    The one redaction used wherever a URL or address is printed. Hidden: the
    password of the userinfo (``user:***@``; the whole userinfo when it has no
    ``:``), and the value of every query item whose key, percent-decoded and in
    any case, names a secret (``password=``, ``PASSWORD=``, ``pass%77ord=``,
    repeated keys). When the URL is malformed (an unescaped ``@``, ``/`` or
    ``?`` in a password) more is hidden rather than less: everything between
    ``://`` and the last ``@``.
    """
    hidden = [False] * len(text)
    scheme_end = text.find("://")
    if scheme_end >= 0:
        start = scheme_end + 3
        at = text.rfind("@", start)
        if at >= 0:
            colon = text.find(":", start, at)
            for index in range(colon + 1 if colon >= 0 else start, at):
                hidden[index] = True
    for start, char in enumerate(text):
        match = _QUERY_ITEM.match(text, start + 1) if char in "?&;" else None
        key = "" if match is None else unquote_plus(match.group(1)).strip().lower()
        if match is not None and any(word in key for word in _SECRET_KEYS):
            for index in range(match.start(2), match.end(2)):
                hidden[index] = True
    if not any(hidden):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if not hidden[index]:
            out.append(char)
        elif index == 0 or not hidden[index - 1]:
            out.append("***")
    return "".join(out)


def shared_options(addresses: Sequence[ServerAddress], **explicit: Any) -> dict[str, Any]:
    """The one value of each named option for connections to all of ``addresses``.

    For each keyword (``username=None, password="pw"``, ...) the result holds
    the explicit value, else the value the addresses' URLs give, else None.
    The same value given twice is fine; an explicit argument and a URL (or
    two URLs) that give different values are refused with
    :class:`InvalidAddressError` naming the option (the values are not shown:
    they may be secrets) rather than one of them being silently dropped.
    """
    merged: dict[str, Any] = {}
    for name, value in explicit.items():
        values = {getattr(a, name) for a in addresses} - {None}
        if value is not None:
            values.add(value)
        if len(values) > 1:
            given = "the URLs and the argument" if value is not None else "the URLs"
            raise InvalidAddressError(
                f"{name}: {given} give different values; one {name} applies to every "
                "connection, give it once",
                option=name,
            )
        merged[name] = next(iter(values), None)
    return merged


def check_cluster_startup(addresses: Sequence[ServerAddress]) -> None:
    """Refuse what a cluster startup address cannot mean (:class:`InvalidAddressError`).

    A unix socket (cluster nodes are TCP), a db other than 0 (a cluster has
    only db 0) and a URL ``timeout`` (the cluster's ``connect_timeout``
    argument sets it for every node).
    """
    for address in addresses:
        shown = address_text(address.target if address.path is None else address.path)
        if address.path is not None:
            raise InvalidAddressError(f"cluster nodes are TCP addresses, not {shown!r}")
        if address.db:
            raise InvalidAddressError(
                f"db {address.db} in the startup address {shown}: a Redis Cluster has "
                "only db 0", option="db",
            )
        if address.timeout is not None:
            raise InvalidAddressError(
                f"timeout in the startup address {shown}: use connect_timeout= for a "
                "cluster (it applies to every node)", option="timeout",
            )
