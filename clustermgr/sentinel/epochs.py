"""Which master views are fresh: config epochs and masters seen replaced.

Sentinel raises a master's config epoch only when a failover completes, so a
view naming a master under an older epoch than one already seen is stale news:
following it would send writes to a master that is being (or has been)
demoted. :class:`EpochGuard` keeps the newest epoch seen and the masters seen
replaced, and filters the candidates a discovery returns.
"""

from __future__ import annotations

import asyncio

from ._common import Address, address_text, logger
from .discovery import MasterView

__all__ = ["EpochGuard"]


class EpochGuard:
    """The newest config epoch seen and the deposed masters of one service."""

    def __init__(self, service: str, stale_grace: float) -> None:
        self._service = service
        self._stale_grace = stale_grace
        #: The newest master config epoch any sentinel has shown us.
        self.floor = 0
        # Masters replaced by a failover we saw committed, with the config
        # epoch they held: one is used again only when a sentinel names it
        # under a newer epoch (sentinels elected it again), never on an old view.
        self.deposed: dict[Address, int] = {}
        self._stale_since: float | None = None

    def restart_stale_clock(self) -> None:
        """Stale views are timed within one search only: start timing afresh."""
        self._stale_since = None

    def fresh(self, candidates: list[Address], views: list[MasterView]) -> list[Address]:
        """Drop candidates named only under a config epoch older than one already seen.

        A master we saw replaced (:meth:`depose`) is stale too unless named
        under a newer epoch than it had. If nothing fresh shows up for
        ``stale_grace`` seconds within one search (the sentinels were reset,
        or kept the old master after an abort we missed), a stale view is
        accepted with a warning: far longer than the seconds between a
        promotion and +switch-master.
        """
        newest = max((v.config_epoch for v in views), default=0)
        floor = max(self.floor, newest)
        epochs: dict[Address, int] = {}
        for view in views:
            if not view.reports_down:
                epochs[view.address] = max(epochs.get(view.address, 0), view.config_epoch)
        # A master we saw replaced is fresh only under a newer epoch than it
        # had, even when every sentinel names it (it restarted before they switched).
        fresh = [a for a in candidates
                 if floor <= epochs.get(a, 0) > self.deposed.get(a, -1)]
        if fresh or not candidates:
            self.floor = floor
            self._stale_since = None
            return fresh
        now = asyncio.get_running_loop().time()
        if self._stale_since is None:
            self._stale_since = now
        if now - self._stale_since < self._stale_grace:
            logger.info("ignoring stale view of %r: %s named under config epoch %d "
                        "(newest seen %d, or a master replaced under it)",
                        self._service, ", ".join(address_text(a) for a in candidates),
                        max(epochs.get(a, 0) for a in candidates), floor)
            return []
        logger.warning("only stale views of %r for %.1fs: accepting %s",
                       self._service, now - self._stale_since, address_text(candidates[0]))
        self.floor = max(epochs.get(a, 0) for a in candidates)
        self._stale_since = None
        self.undepose(candidates[0])
        return candidates

    def depose(self, address: Address | None) -> bool:
        """``address`` was replaced by a committed failover: fence it from old views.

        True if that is news (the caller's decisions in progress are stale).
        """
        if address is not None and self.deposed.get(address, -1) < self.floor:
            self.deposed[address] = self.floor
            return True
        return False

    def undepose(self, address: Address | None) -> None:
        """The leader aborted the failover of ``address``: it stays the master."""
        if address is not None:
            self.deposed.pop(address, None)

    def observe(self, views: list[MasterView], current: Address | None) -> None:
        """Record the config epoch under which the sentinels name ``current``."""
        for view in views:
            if view.address == current:
                self.floor = max(self.floor, view.config_epoch)
