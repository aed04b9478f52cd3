"""Make aioredis 1.x code accept clustermgr's objects and catch its errors.

One explicit call, :func:`register_with_aioredis`: clustermgr never imports
aioredis behind its user's back.
"""

from __future__ import annotations

from .abc import AbcChannel, AbcConnection, AbcPool
from .cluster import ClusterPool
from .connection import RedisConnection
from .errors import alias_aioredis_errors
from .pool import ConnectionsPool
from .sentinel import SentinelPool

__all__ = ["register_with_aioredis"]


def register_with_aioredis() -> None:
    """Make aioredis 1.x code accept clustermgr's objects and catch its errors.

    Registers clustermgr's interfaces as virtual subclasses of aioredis' own
    ABCs (aioredis' ``Redis`` checks ``isinstance(x, aioredis.abc.AbcPool)``
    to decide how to run transactions), and its pools and connection as
    virtual subclasses of ``aioredis.ConnectionsPool`` /
    ``aioredis.RedisConnection`` (``isinstance`` only: nothing of aioredis'
    implementation is inherited). Every clustermgr error becomes a real
    subclass of the aioredis error of the same name, so ``except
    aioredis.ReplyError:`` catches clustermgr's, and a bad argument is also an
    ``AssertionError`` (see :func:`clustermgr.errors.alias_aioredis_errors`).
    Idempotent; a no-op without aioredis.
    """
    try:
        import aioredis  # type: ignore[import-untyped,unused-ignore]
        from aioredis import abc as aioredis_abc  # type: ignore[import-untyped,unused-ignore]
        from aioredis import errors as aioredis_errors  # type: ignore[import-untyped,unused-ignore]
    except Exception:  # pragma: no cover - aioredis missing or broken
        return
    alias_aioredis_errors(aioredis_errors)
    aioredis_abc.AbcConnection.register(AbcConnection)
    aioredis_abc.AbcPool.register(AbcPool)
    aioredis_abc.AbcChannel.register(AbcChannel)
    aioredis.RedisConnection.register(RedisConnection)
    for pool in (ConnectionsPool, ClusterPool, SentinelPool):
        aioredis.ConnectionsPool.register(pool)
