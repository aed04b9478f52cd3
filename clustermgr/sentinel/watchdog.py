"""The ROLE watchdog: events can be missed, so the servers in use are asked."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from .._timeout import timeout as _timeout
from ..address import address_text
from ..errors import NoPermissionError, RedisError, TimeoutError
from ..pool import ConnectionsPool
from .errors import RoleMismatchError
from .servers import ServerPool

__all__ = ["watch_roles"]

#: A full replica refresh every this many watchdog rounds.
REFRESH_EVERY = 5


class Watched(Protocol):
    """What the watchdog needs of the follower it checks."""

    @property
    def role(self) -> str: ...

    @property
    def closing(self) -> bool: ...

    def serving_now(self) -> list[ServerPool]: ...

    def report_error(self, pool: ConnectionsPool, exc: BaseException) -> None: ...

    def refresh(self) -> None: ...


async def watch_roles(
    follower: Watched, interval: float, expected: str, bound: float
) -> None:
    """Check ROLE of the server(s) in use every ``interval`` s until closing.

    Each ROLE query gets ``bound`` seconds: a server that does not answer
    (paused, hung) is reported with a :class:`~clustermgr.errors.TimeoutError`.
    """
    rounds = 0
    while not follower.closing:
        await asyncio.sleep(interval)
        pools = follower.serving_now()
        if not pools:
            continue
        replies = await asyncio.gather(
            *(_role_of(p, bound) for p in pools), return_exceptions=True)
        for pool, reply in zip(pools, replies, strict=True):
            if isinstance(reply, NoPermissionError):
                continue  # ROLE not allowed: the sentinels' view stands (see check_role)
            if isinstance(reply, (RedisError, OSError)):
                follower.report_error(pool, reply)
                continue
            if isinstance(reply, BaseException):
                raise reply
            actual = reply[0].decode() if reply and isinstance(reply[0], bytes) else "?"
            if actual != expected:
                follower.report_error(pool, RoleMismatchError(pool.address, follower.role, actual))
        rounds += 1
        if rounds % REFRESH_EVERY == 0:
            follower.refresh()


async def _role_of(pool: ServerPool, bound: float) -> Any:
    # A coroutine, so that a pool closed meanwhile fails here, in the gather.
    try:
        async with _timeout(bound):
            return await pool.execute(b"ROLE", encoding=None)
    except asyncio.TimeoutError:
        raise TimeoutError(
            f"{address_text(pool.address)} did not answer ROLE within {bound}s"
        ) from None
