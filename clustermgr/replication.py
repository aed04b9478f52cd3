"""Write safety: wait until N replicas acknowledged a write (``WAIT``).

Redis replication is asynchronous: a master acknowledges a write before any
replica has it, so a failover right after can lose it.  ``WAIT numreplicas
timeout`` sent *on the same connection* after the write blocks until that
many replicas have processed everything the connection wrote.

:class:`WaitReplicas` wraps any clustermgr pool (single node, cluster,
sentinel): write commands go on an exclusive connection followed by WAIT, and
the call fails with :class:`NotReplicatedError` (``may_have_executed=True``:
the master applied it) when fewer replicas confirmed within the timeout.
Read-only commands and everything else go to the wrapped pool untouched.
WAIT is never sent on a shared (multiplexed) connection, where it would hold
up every other caller's replies.
"""

from __future__ import annotations

from typing import Any

from .commands import CommandTable
from .errors import (
    AskError,
    ClusterRetryError,
    ConnectionClosedError,
    ReadOnlyError,
    RedirectError,
    RedisError,
)
from .tasks import consume

__all__ = ["NotReplicatedError", "WaitReplicas"]

_TABLE = CommandTable.builtin()
_PASS_THROUGH = frozenset({b"WAIT", b"WAITAOF", b"MULTI", b"EXEC", b"DISCARD", b"WATCH"})
# Failures after which a write is sent again (when it provably did not run).
_NOT_EXECUTED = (ReadOnlyError, ConnectionClosedError)


class NotReplicatedError(RedisError):
    """The write was applied by the master but fewer than ``wanted`` replicas
    confirmed it within the timeout (``acked`` did)."""

    may_have_executed = True

    def __init__(self, msg: str, *, acked: int, wanted: int) -> None:
        super().__init__(msg)
        self.acked = acked
        self.wanted = wanted


def _is_write(command: Any, args: tuple[Any, ...]) -> bool:
    name = command.upper() if isinstance(command, bytes) else str(command).upper().encode()
    if name in _PASS_THROUGH:
        return False
    info = _TABLE.info(command, args)
    return info is None or not info.readonly  # unknown commands count as writes


class WaitReplicas:
    """``WaitReplicas(pool, replicas=1, timeout=1.0)``: writes through it wait for replicas.

    ``timeout`` (seconds, > 0) bounds the WAIT; ``execute`` of a write returns
    the command's reply once ``replicas`` replicas confirmed it; redirects and
    writes that provably did not run are retried, ``max_attempts`` in all,
    then :class:`~clustermgr.errors.ClusterRetryError`. Attribute access other
    than :meth:`execute` is forwarded to the wrapped pool.
    """

    def __init__(
        self, pool: Any, replicas: int = 1, timeout: float = 1.0, *, max_attempts: int = 16
    ) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas must be an int >= 1, got {replicas!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds (WAIT 0 blocks forever), got {timeout}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        self.pool = pool
        self.replicas = replicas
        self.timeout = timeout
        self.max_attempts = max_attempts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)

    async def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> Any:
        """Run ``command``; for writes, also ``WAIT replicas timeout`` on its connection.

        Like the wrapped pool's ``execute``, a write answered with MOVED or ASK
        is sent again where the redirect points, and one that provably did not
        run (READONLY from a demoted master, a connection closed before it was
        written) is sent again on a fresh connection; at most
        ``max_attempts`` times in all.
        """
        if not _is_write(command, args):
            return await self.pool.execute(command, *args, **kwargs)
        redirect: RedirectError | None = None
        last: RedisError | None = None
        for _attempt in range(self.max_attempts):
            try:
                return await self._write_once(command, args, kwargs, redirect)
            except RedirectError as exc:
                redirect = last = exc
            except _NOT_EXECUTED as exc:
                if exc.may_have_executed:
                    raise
                redirect, last = None, exc
        raise ClusterRetryError(
            f"{command!r} gave up after {self.max_attempts} attempts; last: {last}", last
        ) from last

    async def _write_once(
        self, command: bytes | str, args: tuple[Any, ...], kwargs: dict[str, Any],
        redirect: RedirectError | None,
    ) -> Any:
        pool, asking = self.pool, False
        if redirect is not None:
            # Let the routing pool follow the redirect itself (it learns the
            # route and opens the node's pool): a read of the same key.
            await pool.execute(b"EXISTS", _TABLE.first_key(command, args))
            if isinstance(redirect, AskError):
                pool = pool.node_pools.get(redirect.address)
                if pool is None:
                    raise redirect
                asking = True
        conn = await (pool.acquire() if asking else pool.acquire(command, args))
        try:
            if asking:
                conn.execute(b"ASKING").add_done_callback(consume)
            reply = conn.execute(command, *args, **kwargs)
            waited = conn.execute(b"WAIT", self.replicas, max(1, round(self.timeout * 1000)))
            try:
                result = await reply
            finally:
                try:
                    acked = await waited
                except RedisError:
                    if not reply.exception():
                        raise
        finally:
            pool.release(conn)
        if acked < self.replicas:
            raise NotReplicatedError(
                f"{command!r} was applied but only {acked} of {self.replicas} replicas "
                f"confirmed it within {self.timeout}s",
                acked=acked, wanted=self.replicas,
            )
        return result

    def __repr__(self) -> str:
        return f"<WaitReplicas replicas={self.replicas} timeout={self.timeout}s {self.pool!r}>"
