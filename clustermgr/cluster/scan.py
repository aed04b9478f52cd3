"""Cluster-wide SCAN: every master scanned, each key yielded once per pass.

Masters are scanned one after another with their own cursor. If the map
changes during the pass (failover, slot move), masters that appeared are
scanned too, and a node that fails mid-scan is replaced by the current owners;
keys already yielded in this pass are not yielded again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import ConnectError, ConnectionClosedError, PoolClosedError

if TYPE_CHECKING:
    from .pool import ClusterPool

__all__ = ["cluster_scan"]

_MAX_NODE_RESTARTS = 5


async def cluster_scan(
    cluster: ClusterPool, *, match: bytes | str | None = None, count: int | None = None
) -> AsyncIterator[Any]:
    """Yield every key of the cluster once (``SCAN`` on each master)."""
    extra: list[Any] = []
    if match is not None:
        extra += [b"MATCH", match]
    if count is not None:
        extra += [b"COUNT", count]
    seen: set[Any] = set()
    done: set[Any] = set()
    failures = 0
    while True:
        if cluster.slot_map is None or not cluster._masters:
            await cluster._refresh.refresh("scan", cluster._options.node_timeout)
        pending = [p for p in list(cluster._masters) if p.address not in done]
        if not pending:
            return
        pool = pending[0]
        cursor: Any = 0
        try:
            while True:
                cursor, keys = await pool.execute(b"SCAN", cursor, *extra)
                for key in keys:
                    if key not in seen:
                        seen.add(key)
                        yield key
                if int(cursor) == 0:
                    break
        except (ConnectionClosedError, ConnectError, PoolClosedError):
            failures += 1
            if failures > _MAX_NODE_RESTARTS * max(1, len(pending)):
                raise
            await cluster._refresh.refresh("scan connection failure",
                                           cluster._options.node_timeout)
            continue
        done.add(pool.address)
