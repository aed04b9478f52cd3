"""Errors specific to Sentinel-managed deployments.

Each failure to find a server has its own type, so callers (and logs) can tell
"no sentinel knows this service" from "no sentinel answered" from "wrong
password". They all derive from the aioredis-compatible
:class:`~clustermgr.errors.MasterNotFoundError` / ``AuthError`` so code that
catches those keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from ..errors import (
    AuthError,
    ConnectError,
    MasterNotFoundError,
    RedisError,
    SlaveNotFoundError,
    TimeoutError,
)
from ._common import Address, address_text

__all__ = [
    "FailoverTimeoutError",
    "MasterDownError",
    "NoHealthyReplicaError",
    "RoleMismatchError",
    "SentinelAuthError",
    "SentinelsUnreachableError",
    "UnknownServiceError",
    "raise_no_usable",
]


class UnknownServiceError(MasterNotFoundError):
    """The sentinels that answered do not monitor a service by that name."""


class MasterDownError(MasterNotFoundError):
    """The sentinels know the service but every one that answered sees its master down
    (or its link to it not open yet, right after a failover)."""


class SentinelsUnreachableError(MasterNotFoundError, ConnectError):
    """No sentinel gave a usable answer (refused, timed out, closed the
    connection, or sent a malformed reply).

    ``failures`` maps each sentinel asked to its error (empty when unknown).
    """

    def __init__(
        self, msg: str = "", *args: Any, failures: Mapping[Address, BaseException] | None = None
    ) -> None:
        super().__init__(msg, *args)
        self.failures: dict[Address, BaseException] = dict(failures or {})


class SentinelAuthError(AuthError):
    """A sentinel refused our credentials (``sentinel_password``/``sentinel_username``)."""


class NoHealthyReplicaError(SlaveNotFoundError):
    """The service has no replica that sentinels report up and in sync."""


class RoleMismatchError(RedisError):
    """A server did not answer ``ROLE`` with the role the pool needs.

    Raised before any command is sent to it, so ``may_have_executed`` is False.
    """

    def __init__(self, address: object, expected: str, actual: str) -> None:
        super().__init__(f"{address} has role {actual!r}, expected {expected!r}")
        self.address = address
        self.expected = expected
        self.actual = actual


class FailoverTimeoutError(MasterNotFoundError, TimeoutError):
    """A command waited for a failover (or a rediscovery) longer than allowed.

    The command was held and never sent, so ``may_have_executed`` is False.
    """

    may_have_executed = False


def raise_no_usable(
    role: str, service: str, errors: Iterable[tuple[Address, BaseException]]
) -> NoReturn:
    """Why a start found no usable ``role`` of ``service``: refused credentials first."""
    errors = list(errors)
    for address, exc in errors:
        if isinstance(exc, AuthError):
            raise AuthError(
                f"{role} {address_text(address)} of {service!r} refused the credentials: {exc}"
            ) from exc
    not_found = MasterNotFoundError if role == "master" else SlaveNotFoundError
    raise not_found(
        f"no {role} of {service!r} could be used: "
        + "; ".join(f"{address_text(a)}: {e}" for a, e in errors)
    )
