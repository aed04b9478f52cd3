"""A tiny synchronous RESP2 client for admin commands in the test launcher.

This is *not* the product's data path: it opens a blocking socket, sends one
command at a time and parses the reply.  Reply mapping:

* simple strings -> ``str``
* bulk strings -> ``str`` (UTF-8, ``surrogateescape`` so arbitrary bytes
  round-trip when sent back) or ``bytes`` when the connection is created with
  ``decode=False``; null bulk -> ``None``
* integers -> ``int``
* arrays -> ``list`` (nested); null array -> ``None``
* errors -> a top-level error reply raises :class:`RespError`; an error nested
  inside an array (e.g. in an ``EXEC`` reply) is returned as a
  :class:`RespError` instance in the list.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from types import TracebackType
from typing import TypeAlias, Union

from .errors import TestingError

__all__ = [
    "RespConnection",
    "RespError",
    "RespProtocolError",
    "RespValue",
    "as_int",
    "as_list",
    "as_str",
    "encode_command",
    "execute",
    "parse_info",
]

RespValue = Union[None, int, str, bytes, "list[RespValue]", "RespError"]
"""Any decoded RESP2 reply."""

CommandArg: TypeAlias = str | bytes | int | float
"""Accepted command argument types (numbers are sent as their decimal text)."""

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


class RespError(TestingError):
    """An error reply from the server (``-ERR ...``); ``kind`` is its first word."""

    @property
    def kind(self) -> str:
        """The error prefix, e.g. ``"ERR"``, ``"MOVED"``, ``"NOAUTH"``."""
        text = str(self.args[0]) if self.args else ""
        return text.split(" ", 1)[0]


class RespProtocolError(TestingError, ConnectionError):
    """The byte stream is not valid RESP2 or the connection closed mid-reply."""


def _arg_bytes(arg: CommandArg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode(_ENCODING, _ERRORS)
    if isinstance(arg, bool):
        raise TypeError("bool is not a valid command argument")
    if isinstance(arg, (int, float)):
        return repr(arg).encode("ascii")
    raise TypeError(f"unsupported command argument type {type(arg).__name__}")


def encode_command(args: Sequence[CommandArg]) -> bytes:
    """Encode ``args`` as a RESP2 array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _arg_bytes(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RespConnection:
    """A blocking RESP2 connection.  Use as a context manager or call :meth:`close`.

    ``password`` (and optionally ``username``) are sent with ``AUTH`` right
    after connecting.  ``timeout`` applies to connect and to every read.
    With ``ssl_context`` the connection speaks TLS (server name ``host``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        timeout: float = 5.0,
        password: str | None = None,
        username: str | None = None,
        decode: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.decode = decode
        self._buf = bytearray()
        self._sock: socket.socket | None = socket.create_connection((host, port), timeout=timeout)
        try:
            if ssl_context is not None:
                self._sock = ssl_context.wrap_socket(self._sock, server_hostname=host)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if password is not None:
                if username is not None:
                    self.command("AUTH", username, password)
                else:
                    self.command("AUTH", password)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> RespConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._sock is not None else "closed"
        return f"<RespConnection {self.host}:{self.port} {state}>"

    def close(self) -> None:
        """Close the socket (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def send(self, *args: CommandArg) -> None:
        """Send one command without reading its reply."""
        if self._sock is None:
            raise RespProtocolError("connection is closed")
        self._sock.sendall(encode_command(args))

    def command(self, *args: CommandArg) -> RespValue:
        """Send one command and return its decoded reply (see module doc)."""
        self.send(*args)
        return self.read_reply()

    def read_reply(self) -> RespValue:
        """Read one reply; raise :class:`RespError` if it is an error reply."""
        reply = self._read_value()
        if isinstance(reply, RespError):
            raise reply
        return reply

    # -- parsing -----------------------------------------------------------

    def _fill(self) -> None:
        if self._sock is None:
            raise RespProtocolError("connection is closed")
        chunk = self._sock.recv(65536)
        if not chunk:
            raise RespProtocolError(f"connection to {self.host}:{self.port} closed by server")
        self._buf += chunk

    def _read_line(self) -> bytes:
        while True:
            idx = self._buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self._buf[:idx])
                del self._buf[: idx + 2]
                return line
            self._fill()

    def _read_exact(self, size: int) -> bytes:
        while len(self._buf) < size + 2:
            self._fill()
        data = bytes(self._buf[:size])
        if self._buf[size : size + 2] != b"\r\n":
            raise RespProtocolError("bulk string not terminated by CRLF")
        del self._buf[: size + 2]
        return data

    def _read_value(self) -> RespValue:
        line = self._read_line()
        if not line:
            raise RespProtocolError("empty reply line")
        prefix, rest = line[:1], line[1:]
        if prefix == b"+":
            return rest.decode(_ENCODING, _ERRORS)
        if prefix == b"-":
            return RespError(rest.decode(_ENCODING, _ERRORS))
        if prefix == b":":
            return int(rest)
        if prefix == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._read_exact(size)
            return data.decode(_ENCODING, _ERRORS) if self.decode else data
        if prefix == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [self._read_value() for _ in range(count)]
        raise RespProtocolError(f"unexpected RESP2 reply type {line[:20]!r}")


def execute(
    address: tuple[str, int],
    *args: CommandArg,
    timeout: float = 5.0,
    password: str | None = None,
    username: str | None = None,
) -> RespValue:
    """Open a connection to ``address``, run one command, close, return the reply."""
    with RespConnection(
        address[0], address[1], timeout=timeout, password=password, username=username
    ) as conn:
        return conn.command(*args)


def as_str(value: RespValue) -> str:
    """Return ``value`` as ``str`` (decoding bytes); raise ``TypeError`` otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode(_ENCODING, _ERRORS)
    raise TypeError(f"expected a string reply, got {value!r}")


def as_int(value: RespValue) -> int:
    """Return ``value`` as ``int`` (parsing numeric strings); raise ``TypeError`` otherwise."""
    if isinstance(value, int):
        return value
    if isinstance(value, (str, bytes)):
        return int(value)
    raise TypeError(f"expected an integer reply, got {value!r}")


def as_list(value: RespValue) -> list[RespValue]:
    """Return ``value`` as ``list``; raise ``TypeError`` otherwise."""
    if isinstance(value, list):
        return value
    raise TypeError(f"expected an array reply, got {value!r}")


def parse_info(text: str) -> dict[str, str]:
    """Parse an ``INFO`` reply into a flat ``{field: value}`` dict."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        result[key.strip()] = value.strip()
    return result
