"""A custom connection manager: reads go to a replica, everything else to the primary.

The worked example of subclassing :class:`clustermgr.abc.AbcPool`: two
ConnectionsPools behind one pool object. Code written against AbcPool (and
aioredis 1.x's ``Redis``) runs on it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clustermgr import AbcChannel, AbcConnection, AbcPool, ConnectionsPool, create_pool

READ_COMMANDS = frozenset(
    {b"GET", b"MGET", b"EXISTS", b"STRLEN", b"TTL", b"HGET", b"HGETALL", b"HMGET",
     b"LRANGE", b"LLEN", b"SMEMBERS", b"SCARD", b"ZRANGE", b"ZSCORE", b"ZCARD"}
)


class ReadWritePool(AbcPool):
    """Routes read-only commands to a replica pool and the rest to the primary pool."""

    def __init__(self, primary: ConnectionsPool, replica: ConnectionsPool) -> None:
        self.primary = primary
        self.replica = replica
        self._owner: dict[AbcConnection, ConnectionsPool] = {}

    def _pool_for(self, command: bytes | str | None) -> ConnectionsPool:
        if command is None:
            return self.primary
        name = command.encode() if isinstance(command, str) else command
        return self.replica if name.upper() in READ_COMMANDS else self.primary

    def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> Any:
        return self._pool_for(command).execute(command, *args, **kwargs)

    def execute_pubsub(self, command: bytes | str, *channels: Any) -> Any:
        return self.primary.execute_pubsub(command, *channels)

    def get_connection(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection | None:
        return self._pool_for(command).get_connection(command, args)

    async def acquire(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection:
        pool = self._pool_for(command)
        conn = await pool.acquire(command, args)
        self._owner[conn] = pool
        return conn

    def release(self, conn: AbcConnection) -> None:
        self._owner.pop(conn).release(conn)

    def close(self) -> None:
        self.primary.close()
        self.replica.close()

    async def wait_closed(self) -> None:
        await self.primary.wait_closed()
        await self.replica.wait_closed()

    @property
    def closed(self) -> bool:
        return self.primary.closed

    @property
    def address(self) -> None:
        return None  # two servers behind this pool

    @property
    def db(self) -> int:
        return self.primary.db

    @property
    def encoding(self) -> str | None:
        return self.primary.encoding

    @property
    def in_pubsub(self) -> int:
        return self.primary.in_pubsub

    @property
    def pubsub_channels(self) -> Mapping[bytes, AbcChannel]:
        return self.primary.pubsub_channels

    @property
    def pubsub_patterns(self) -> Mapping[bytes, AbcChannel]:
        return self.primary.pubsub_patterns


async def create_readwrite_pool(primary: Any, replica: Any, **options: Any) -> ReadWritePool:
    """Open both pools; ``primary`` and ``replica`` take any address form."""
    primary_pool = await create_pool(primary, **options)
    return ReadWritePool(primary_pool, await create_pool(replica, **options))
