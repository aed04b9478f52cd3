"""One attempt of a routed command on one node pool, within its budget."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from .._timeout import timeout as _timeout
from ..address import address_text
from ..bounds import blocking_wait
from ..errors import RedisError, TimeoutError
from ..pool import ConnectionsPool
from ..tasks import consume
from .actions import Budget
from .classified import Classified

__all__ = ["attempt", "send_once"]

#: ``exhausted(c, budget, why, last)``: the error raised when the budget is spent.
Exhausted = Callable[[Classified, Budget, str, "BaseException | None"], BaseException]


async def attempt(
    now: Callable[[], float], pool: ConnectionsPool, c: Classified, asking: bool,
    budget: Budget, exhausted: Exhausted,
) -> Any:
    """One attempt, cut when the budget's deadline passes (the command may have run).

    A blocking command (BLPOP, XREAD BLOCK, ...) gets its own timeout on
    top of the budget; one that waits forever (timeout 0) is not cut.
    """
    remaining = budget.remaining(now())
    info = c.info
    if remaining is not None and info is not None and info.is_blocking:
        wait = blocking_wait(info.name.upper().encode(), c.args)
        if wait is not None:
            remaining = None if wait == math.inf else remaining + wait
    if remaining is None:
        return await send_once(pool, c, asking)
    try:
        async with _timeout(remaining):
            return await send_once(pool, c, asking)
    except RedisError:
        raise
    except asyncio.TimeoutError:
        budget.unknown = True
        why = budget.spent(now()) or "its deadline"
        raise exhausted(c, budget, why, TimeoutError(
            f"no reply from {address_text(pool.address)} before the deadline",
            may_have_executed=True,
        )) from None


async def send_once(pool: ConnectionsPool, c: Classified, asking: bool) -> Any:
    """Send ``c`` on ``pool`` once; after an ASK redirect, preceded by ``ASKING``."""
    if not asking:
        return await pool.execute(c.command, *c.args, **c.kwargs)
    # ASKING and the command back to back on one connection.
    conn = pool.get_connection()
    if conn is not None:
        conn.execute(b"ASKING").add_done_callback(consume)
        return await conn.execute(c.command, *c.args, **c.kwargs)
    conn = await pool.acquire()
    try:
        conn.execute(b"ASKING").add_done_callback(consume)
        return await conn.execute(c.command, *c.args, **c.kwargs)
    finally:
        pool.release(conn)
