"""Credential providers: ``(username, password)`` asked for at every connect.

Token-based managed services rotate passwords (IAM tokens that expire, vault
leases). A ``credential_provider`` -- a plain or ``async`` callable taking no
argument and returning ``(username, password)`` (``username`` may be None) --
given to a factory is called before each new connection's handshake, so new
connections always use the current credentials; ``pool.reauthenticate()``
sends ``AUTH`` with them on the connections already open. A provider that
does not answer within the connect timeout, raises, or answers an empty
password (which would connect unauthenticated, as ``default``) fails the
connect with :class:`CredentialProviderError`.
:func:`get_credentials` is the one place a provider is called and checked.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from ._timeout import timeout as _timeout
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

    Also raised when it does not answer within the connect timeout, or
    answers an empty password. The connect (or ``reauthenticate()``) it was
    asked for fails with it (nothing was sent to the server, so
    ``may_have_executed`` is False); it is never retried.
    """


async def get_credentials(provider: CredentialProvider, timeout: float | None) -> Credentials:
    """Call ``provider`` (awaiting it if it is async, within ``timeout`` seconds)
    and check its answer: a ``(username or None, password)`` pair with a
    non-empty password (an empty one would connect unauthenticated, as the
    ``default`` user)."""
    try:
        async with _timeout(timeout):
            result = provider()
            if inspect.isawaitable(result):
                result = await result
    except asyncio.TimeoutError:
        raise CredentialProviderError(
            f"the credential provider did not answer within {timeout}s"
        ) from None
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
    if not result[1]:
        raise CredentialProviderError("the credential provider returned an empty password")
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
