"""Following the healthy replicas of a sentinel-managed service.

:class:`ReplicaFollower` keeps one pool per healthy replica (``SENTINEL
REPLICAS``, skipping ``s_down``/``o_down``/``disconnected`` or a broken master
link), drops one on ``+sdown``, a role change, a promotion or a connection
error, and adds them back on ``-sdown``/``+slave``/... through a coalesced,
rate-limited refresh.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from ..errors import ReadOnlyError, RedisError
from ..pool import ConnectionsPool
from ._common import Address, address_text, logger
from .discovery import discover_replicas
from .events import SentinelEvent
from .failover import Follower
from .servers import ServerPool

__all__ = ["ReplicaFollower"]

#: Replica events that may add a replica to the rotation.
_REPLICA_UP_EVENTS = frozenset({
    "-sdown", "+slave", "+reboot", "+slave-reconf-done", "+convert-to-slave",
})


class ReplicaFollower(Follower):
    """Replica rotation for a ``role="replica"`` :class:`~.pool.SentinelPool`."""

    role: ClassVar[str] = "replica"

    _refresher: asyncio.Task[None] | None = None

    async def _candidates(self) -> list[Address]:
        return await discover_replicas(self._sentinel, self._service)

    def _serving(self) -> list[ServerPool]:
        return list(self.replicas)

    def _installing(self, pools: list[ServerPool], old: ServerPool | None, reason: str) -> None:
        if old is not None and pools != self.replicas:
            logger.info("replicas of %r: %s (%s)", self._service,
                        ", ".join(address_text(p.address) for p in pools), reason)
        self.replicas = list(pools)

    def _absorbs(self, pool: ConnectionsPool, exc: BaseException) -> bool:
        if isinstance(exc, ReadOnlyError):
            return True  # a write sent to a replica: the caller's mistake, not ours
        replica = pool if isinstance(pool, ServerPool) and pool in self.replicas else None
        if replica is not None and len(self.replicas) > 1:
            self._drop_replica(replica, f"{type(exc).__name__}: {exc}")
            return True
        return False

    def _after_reconnect(self, sentinel: Address) -> None:
        self.refresh()

    # -- the rotation ----------------------------------------------------------------------

    def _pool_at(self, address: Address | None) -> ServerPool | None:
        return next((p for p in self.replicas if p.address == address), None)

    def _drop_replica(self, pool: ServerPool, reason: str) -> None:
        """Take one replica out of the rotation; hold if it was the last."""
        if pool not in self.replicas:
            return
        self.replicas.remove(pool)
        self.servers.fence(pool, reason)
        self.refresh()
        if not self.replicas:
            logger.info("no replica of %r left (%s): rediscovering", self._service, reason)
            self.hold()
            return
        if pool is self.current:
            self.current = self.replicas[0]
            self._hooks.move_pubsub(self.current)
            if self.active is not None:
                self.active = self.current
        self._publish()
        logger.info("replica %s of %r dropped (%s); %d left", address_text(pool.address),
                    self._service, reason, len(self.replicas))

    def refresh(self) -> None:
        """Ask the sentinels for healthy replicas soon (coalesced, rate-limited)."""
        if self._closing:
            return
        if self._refresher is None or self._refresher.done():
            self._refresher = self._tasks.spawn(self._refresh_replicas())

    async def _refresh_replicas(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last_discovery + self._rediscover_interval - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.active is None or self._closing:
            return  # the resolver is at work
        self._last_discovery = loop.time()
        try:
            healthy = await discover_replicas(self._sentinel, self._service)
        except (RedisError, OSError) as exc:
            logger.debug("replica refresh of %r failed: %s", self._service, exc)
            return
        known = {p.address for p in self.replicas}
        gone = [p for p in self.replicas if p.address not in healthy]
        new, _errors = await self._open_all([a for a in healthy if a not in known])
        if self.active is None or self._closing:
            for pool in new:
                self.servers.discard(pool)
            return
        keep = [p for p in self.replicas if p not in gone and not p.closed]
        if not keep and not new:
            return  # sentinels see no healthy replica; keep serving what answers
        if not new and not gone:
            return
        self._install(keep + new, "replica refresh")

    # -- sentinel events ---------------------------------------------------------------------

    def _on_service_event(self, event: SentinelEvent) -> None:
        kind = event.kind
        if kind == "+switch-master":
            # The promoted replica is a master now; the old one may come back as a replica.
            pool = self._pool_at(event.address)
            if pool is not None:
                self._drop_replica(pool, f"promoted ({kind})")
            self.refresh()
            return
        if event.instance_type not in ("slave", "replica") or event.address is None:
            return
        pool = self._pool_at(event.address)
        if kind in ("+sdown", "+odown") or (
            kind == "+role-change" and "master" in event.payload.split("role is", 1)[-1]
        ):
            if pool is not None:
                self._drop_replica(pool, f"{kind} from sentinel {address_text(event.source)}")
        elif pool is None and (kind in _REPLICA_UP_EVENTS or kind == "+role-change"):
            self.refresh()
