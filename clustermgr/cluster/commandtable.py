"""Reading the servers' own command table (``COMMAND``) for routing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from .._timeout import timeout as _timeout
from ..commands import CommandTable
from ..errors import RedisError
from ..pool import ConnectionsPool

__all__ = ["read_command_table"]

logger = logging.getLogger("clustermgr.cluster")


async def read_command_table(
    pools: Iterable[ConnectionsPool], timeout: float
) -> CommandTable | None:
    """The table of the first of ``pools`` that answers ``COMMAND`` within ``timeout``
    seconds; None (logged) if none does: the builtin table stays."""
    for pool in pools:
        try:
            async with _timeout(timeout):
                reply = await pool.execute(b"COMMAND", encoding=None)
            return CommandTable.from_command_reply(reply)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            logger.debug("COMMAND on %s failed: %s", pool, exc)
    logger.warning("could not read the command table; using the builtin one")
    return None
