"""Following the master of a sentinel-managed service through failovers.

:class:`MasterFollower` reads the failover out of sentinel events (hold at the
first sign, fence the old master at the promotion, release at
``+promoted-slave`` or ``+switch-master``, back to the old master after an
abort) and filters discovered masters through an :class:`~.epochs.EpochGuard`
so that a demoted master is never chosen again on an old view.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from ..errors import ProtocolError, RedisError
from ..events import FailoverDetected
from ._common import Address, address_text, logger
from .discovery import MasterView, discover_master
from .epochs import EpochGuard
from .errors import RoleMismatchError
from .events import PROMOTION_EVENTS, SentinelEvent
from .failover import Failover, Follower
from .replies import address_reply
from .servers import ServerPool

__all__ = ["MasterFollower"]


class MasterFollower(Follower):
    """Failover decisions for a ``role="master"`` :class:`~.pool.SentinelPool`."""

    role: ClassVar[str] = "master"

    def __init__(self, *args: Any, early_release: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._early_release = early_release
        self.epochs = EpochGuard(self._service, self._failover_timeout)
        self._first_look: float | None = None  # startup: when discovery was first asked

    # -- candidates --------------------------------------------------------------------

    async def _candidates(self) -> list[Address]:
        candidates, views = await discover_master(self._sentinel, self._service)
        candidates = self.epochs.fresh(candidates, views)
        if self.current is None:
            candidates = self._not_being_replaced(candidates, views)
        failover = self.failover
        if failover is not None and not failover.aborted:
            # Sentinels have not switched yet: keep holding.
            candidates = [a for a in candidates if a != failover.old]
        return candidates

    def _not_being_replaced(
        self, candidates: list[Address], views: list[MasterView]
    ) -> list[Address]:
        """Startup: skip a master that some sentinel is failing over (it may already
        have promoted a replica, and writes to the old master would be lost).

        Bounded: after half of ``failover_timeout`` since the first look (a failover
        stuck without a good replica), the other sentinels' view is trusted.
        """
        now = asyncio.get_running_loop().time()
        if self._first_look is None:
            self._first_look = now
        if now - self._first_look >= self._failover_timeout / 2:
            return candidates
        replacing = {v.address for v in views if "failover_in_progress" in v.flags}
        kept = [a for a in candidates if a not in replacing]
        if len(kept) < len(candidates):
            logger.info("a sentinel is failing over %s of %r: waiting for the new master",
                        ", ".join(address_text(a) for a in replacing), self._service)
        return kept

    def _serving(self) -> list[ServerPool]:
        return [self.current] if self.current is not None else []

    def _new_search(self) -> None:
        self.epochs.restart_stale_clock()

    async def _find(self) -> list[ServerPool] | None:
        failover = self.failover
        if failover is None or failover.aborted:
            return await super()._find()
        if failover.switch_to is not None and failover.switch_to != failover.old:
            return [await self._open(failover.switch_to)]
        if (
            self._early_release
            and failover.promoted is not None
            and failover.promoted != failover.old
        ):
            # Only after +promoted-slave: the leader has seen the replica
            # become master and raised the config epoch, so the failover
            # can no longer be aborted. A replica (or a restarted old
            # master) answering ROLE master earlier proves nothing.
            try:
                return [await self._open(failover.promoted)]
            except RoleMismatchError:
                pass
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_discovery < self._rediscover_interval * 2.5:
            return None
        return await self._discover()

    # -- switching -----------------------------------------------------------------------

    def _depose(self, address: Address | None) -> None:
        if self.epochs.depose(address):
            self._generation += 1

    def _switched(self, old: ServerPool, current: ServerPool, failover: Failover | None,
                  reason: str, held: float | None) -> None:
        if isinstance(old.address, tuple):
            self._depose(old.address)
        if reason == "failover":
            self._tasks.spawn(self._observe_epoch())
        events = self._hooks.events
        if events.active:
            how = f"sentinel {failover.reason}" if failover is not None else reason
            events.emit(FailoverDetected(
                old.address if isinstance(old.address, tuple) else None,
                current.address if isinstance(current.address, tuple) else None,
                detected_by=f"{how}; switched after {reason}", service=self._service,
                at=time.time() - (held or 0.0),
            ))

    async def _observe_epoch(self) -> None:
        """After a switch learnt from events, record the new config epoch."""
        try:
            _candidates, views = await discover_master(self._sentinel, self._service)
        except (RedisError, OSError):
            return
        self.epochs.observe(views, self._current_address())

    def _after_reconnect(self, sentinel: Address) -> None:
        self._tasks.spawn(self._check_view(sentinel))

    async def _check_view(self, sentinel: Address) -> None:
        """Compare a reconnected sentinel's master with ours (events may be lost)."""
        try:
            named = await self._sentinel.execute_on(
                sentinel, b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", self._service,
                parse=address_reply)
            if named is not None:  # compared as this client reaches it
                named = self._sentinel.remap(named)
        except (RedisError, OSError) as exc:
            if isinstance(exc, ProtocolError):
                logger.warning("%s; not comparing its view", exc)
            return
        if named is None or self.current is None:
            return
        if named != self.current.address and self.active is not None:
            logger.info("sentinel %s names another master for %r: rediscovering",
                        address_text(sentinel), self._service)
            self.hold()

    # -- sentinel events -----------------------------------------------------------------

    def _on_startup_event(self, event: SentinelEvent) -> None:
        """Before the first install: record what a failover changes, decide again."""
        if self.failover is not None:
            return
        if event.kind == "+switch-master" or event.kind in PROMOTION_EVENTS:
            self._depose(event.master_address)
            if event.master_address is not None:
                self.servers.fence_opening(event.master_address)
        elif not (event.is_failover_start or event.is_failover_abort):
            return
        self._generation += 1

    def _on_service_event(self, event: SentinelEvent) -> None:
        failover = self.failover
        ours = failover.old if failover is not None else self._current_address()
        if event.kind == "+switch-master":
            self._on_switch_master(event, ours)
            return
        if (event.kind == "+convert-to-slave" and failover is None and ours is not None
                and event.address == ours and self.current is not None):
            # The sentinels turn our master into a replica of another: it was
            # replaced (maybe while we could not hear it). Fence, decide again.
            logger.info("sentinel %s converts master %s of %r to a replica: rediscovering",
                        address_text(event.source), address_text(ours), self._service)
            self._depose(ours)
            self._generation += 1
            self.servers.fence(self.current, f"{event.kind} from sentinel "
                               f"{address_text(event.source)}")
            self.hold()
            return
        if event.master_address != ours:
            return  # about an earlier incarnation of the master
        if event.is_failover_start:
            self._on_failover_stage(event)
        elif failover is not None and (
            (event.is_failover_abort and failover.leader in (None, event.source))
            or (event.kind == "-odown" and not failover.started)
        ):
            # An abort counts from the leader only: a sentinel that lost the
            # election aborts its own attempt while the leader goes on.
            if not failover.aborted:
                logger.info("failover of %r ended without a switch (%s): rechecking master",
                            self._service, event.kind)
                self._generation += 1
            failover.aborted = True
            self.epochs.undepose(failover.old)
            self._wake.set()
        elif (
            event.kind in ("+role-change", "+convert-to-slave")
            and event.instance_type == "master"
            and "slave" in event.payload.split("role is", 1)[-1]
            and self.active is not None
        ):
            logger.info("sentinel reports master %s of %r demoted: rediscovering",
                        address_text(ours), self._service)
            self._generation += 1
            self.hold()

    def _on_switch_master(self, event: SentinelEvent, ours: Address | None) -> None:
        new = event.address
        if new is None or (self.failover is None and new == ours):
            return
        if self.failover is None or self.failover.switch_to != new:
            logger.info("+switch-master from sentinel %s: %r %s -> %s",
                        address_text(event.source), self._service,
                        address_text(event.master_address), address_text(new))
        self._begin_failover(event)
        if self.failover is not None:
            if new not in (self.failover.switch_to, self.failover.promoted):
                self._generation += 1
            self.failover.switch_to = new
            self.failover.started = True
        self._wake.set()

    def _on_failover_stage(self, event: SentinelEvent) -> None:
        self._begin_failover(event)
        failover = self.failover
        if failover is None:
            return
        if event.kind not in ("+odown", "+try-failover"):
            failover.leader = event.source  # only the leader publishes these
        if event.kind != "+odown":
            failover.started = True
            failover.aborted = False
        if event.kind == "+promoted-slave" and event.address not in (None, failover.promoted):
            failover.promoted = event.address
            self._generation += 1
        if event.kind in PROMOTION_EVENTS:
            self._depose(failover.old)
            if failover.old is not None:
                self.servers.fence_opening(failover.old)
            if self.current is not None:
                self.servers.fence(self.current,
                                   f"{event.kind} from sentinel {address_text(event.source)}")
        self._wake.set()

    def _begin_failover(self, event: SentinelEvent) -> None:
        if self.failover is not None:
            return
        loop = asyncio.get_running_loop()
        self._generation += 1
        self.failover = Failover(
            old=self._current_address(), since=loop.time(), reason=event.kind,
        )
        logger.info("failover of %r master %s detected (%s from sentinel %s): holding commands",
                    self._service, address_text(self._current_address()), event.kind,
                    address_text(event.source))
        self.hold()
