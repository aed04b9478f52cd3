"""Credential providers: ``(username, password)`` asked for at every connect.

Token-based managed services rotate passwords (IAM tokens that expire, vault
leases). A ``credential_provider`` -- a plain or ``async`` callable taking no
argument and returning ``(username, password)`` (``username`` may be None) --
given to a factory is called before each new connection's handshake, so new
connections always use the current credentials; ``pool.reauthenticate()``
sends ``AUTH`` with them on the connections already open.
:func:`get_credentials` is the one place a provider is called and checked.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from .errors import RedisError

__all__ = [
    "CredentialProvider", "CredentialProviderError", "Credentials", "SupportsAuth", "auth_all",
    "get_credentials",
]

Credentials = tuple[str | None, str]
"""``(username or None, password)``."""

CredentialProvider = Callable[[], Credentials | Awaitable[Credentials]]
"""A plain or async callable returning :data:`Credentials`."""


class CredentialProviderError(RedisError):
    """The credential provider raised, or returned something not ``(username, password)``.

    The connect it was asked for fails with it (nothing was sent to the
    server, so ``may_have_executed`` is False); it is never retried.
    """


async def get_credentials(provider: CredentialProvider) -> Credentials:
    """Call ``provider`` (awaiting it if it is async) and check its answer."""
    try:
        result = provider()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        raise CredentialProviderError(
            f"the credential provider failed: {type(exc).__name__}: {exc}"
        ) from exc
    if (
        not isinstance(result, tuple)
        or len(result) != 2
        or not (result[0] is None or isinstance(result[0], str))
        or not isinstance(result[1], str)
    ):
        kind = type(result).__name__  # never the value: it may be a secret
        raise CredentialProviderError(
            f"the credential provider returned a {kind}, not a (username, password) pair"
        )
    return result


class SupportsAuth(Protocol):
    """A pool that can ``AUTH`` its connections (:meth:`ConnectionsPool.auth`)."""

    def auth(self, password: str, username: str | None = None) -> Awaitable[bool]:
        """Authenticate every connection; new ones use the credentials too."""


async def auth_all(pools: Iterable[SupportsAuth], password: str, username: str | None) -> None:
    """``auth`` every pool together; the first refusal is raised once all answered."""
    results = await asyncio.gather(
        *(pool.auth(password, username) for pool in pools), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
