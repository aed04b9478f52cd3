"""The one rule deciding whether a connection uses TLS, shared by every factory.

A ``rediss://`` URL asks for TLS; the ``ssl`` argument can add TLS
(``True`` or an :class:`ssl.SSLContext`) but never take it away: ``ssl=False``
with a ``rediss://`` address is a contradiction, refused with
:class:`TlsConflictError` instead of silently connecting in plaintext (and
sending the password in the clear).
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Iterable
from typing import Any

from .address import InvalidAddressError, ServerAddress

__all__ = ["TlsConflictError", "resolve_tls"]

Tls = ssl_module.SSLContext | bool | None


class TlsConflictError(InvalidAddressError):
    """A ``rediss://`` address combined with an explicit ``ssl=False``."""


def resolve_tls(addresses: Iterable[ServerAddress], ssl: Any, *, option: str = "ssl") -> Tls:
    """The TLS setting for connections to the parsed ``addresses``.

    Returns ``ssl`` when it is given (``True`` or a context), ``True`` (verified
    default context) when any address is ``rediss://`` and ``ssl`` is ``None``,
    else ``None`` (or ``False`` as given). ``option`` names the argument in the
    error (``"sentinel_ssl"`` for sentinels). Raises :class:`TlsConflictError`
    for ``ssl=False`` with a ``rediss://`` address.
    """
    wants_tls = [a for a in addresses if a.ssl]
    if ssl is False and wants_tls:
        raise TlsConflictError(
            f"{option}=False conflicts with the rediss:// address {_text(wants_tls[0])}: "
            f"rediss:// asks for TLS; use a redis:// URL for plaintext or drop {option}=False",
            option=option,
        )
    if ssl is None and wants_tls:
        return True
    return ssl  # type: ignore[no-any-return]


def _text(address: ServerAddress) -> str:
    where = address.path if address.path is not None else f"{address.host}:{address.port}"
    return f"rediss://{where}"
