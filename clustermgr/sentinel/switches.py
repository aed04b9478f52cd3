"""The record of a follower's switches: how many, when the last, how long it held."""

from __future__ import annotations

import asyncio
from typing import Any

from ._common import address_text, logger

__all__ = ["Switches"]


class Switches:
    """Switches of one follower's route to another server, for stats and the log."""

    __slots__ = ("_what", "count", "last_at", "last_hold")

    def __init__(self, role: str, service: str) -> None:
        self._what = f"{role} of {service!r}"
        #: Number of server changes followed.
        self.count = 0
        #: Loop time of the last change.
        self.last_at: float | None = None
        #: How long commands were held for the last change (seconds), if they were.
        self.last_hold: float | None = None

    def record(self, old: Any, new: Any, reason: str, held_since: float | None) -> float | None:
        """The route moved from address ``old`` to ``new``: how long commands were held."""
        now = asyncio.get_running_loop().time()
        held = now - held_since if held_since is not None else None
        self.count += 1
        self.last_at = now
        self.last_hold = held
        logger.info(
            "%s switched %s -> %s (%s; commands held %s)", self._what, address_text(old),
            address_text(new), reason, f"{held * 1000:.0f} ms" if held is not None else "0 ms",
        )
        return held
