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

Over a cluster pool writes are routed as its ``execute`` routes them: a
keyless write (``PUBLISH``, ``EVAL script 0``) goes to one master and WAIT
counts that master's replicas (one sent to every master by the pool, such as
``FLUSHALL``, goes to each, each followed by WAIT); a splittable multi-key write across slots
(``MSET``, ``DEL``, ...) is cut into one write per slot, each followed by WAIT
on its own master (not atomic, like the pool's split); an atomic one across
slots raises :class:`~clustermgr.errors.CrossSlotError` before anything is
sent; ``TRYAGAIN`` (keys of a migrating slot split across two nodes) is
backed off and retried. A write and its WAIT get ``timeout`` plus ``margin``
seconds in all (WAIT blocks, so the connection's read timeout does not
apply): then the connection is closed and :class:`~clustermgr.errors.TimeoutError`
(``may_have_executed=True``) raised; a cancelled call closes it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .backoff import Backoff
from .cluster.multikey import merge_fanout, merge_split, split_by_slot
from .commands import CommandTable
from .errors import (
    AskError,
    ClusterRetryError,
    ConnectionClosedError,
    CrossSlotError,
    ReadOnlyError,
    RedirectError,
    RedisError,
    RouteError,
    TimeoutError,
    TryAgainError,
)
from .options import check_options, seconds
from .tasks import consume

__all__ = ["NotReplicatedError", "WaitReplicas"]

_TABLE = CommandTable.builtin()
_PASS_THROUGH = frozenset({b"WAIT", b"WAITAOF", b"MULTI", b"EXEC", b"DISCARD", b"WATCH"})
# Failures after which a write is sent again (when it provably did not run).
_NOT_EXECUTED = (ReadOnlyError, ConnectionClosedError)
_FANOUT = ("all_shards", "all_nodes")  # request policies of commands sent to every master


class NotReplicatedError(RedisError):
    """The write was applied by the master but fewer than ``wanted`` replicas
    confirmed it within the timeout (``acked`` did)."""

    may_have_executed = True

    def __init__(self, msg: str, *, acked: int, wanted: int) -> None:
        super().__init__(msg)
        self.acked = acked
        self.wanted = wanted


def _always(node: Any) -> Callable[[], Any]:
    return lambda: node


def _is_write(command: Any, args: tuple[Any, ...]) -> bool:
    name = command.upper() if isinstance(command, bytes) else str(command).upper().encode()
    if name in _PASS_THROUGH:
        return False
    info = _TABLE.info(command, args)
    return info is None or not info.readonly  # unknown commands count as writes


class WaitReplicas:
    """``WaitReplicas(pool, replicas=1, timeout=1.0)``: writes through it wait for replicas.

    ``timeout`` (finite seconds, > 0) bounds the WAIT, ``margin`` (finite
    seconds, > 0) the rest of the round trip; bad options raise
    :class:`~clustermgr.options.InvalidOptionError` (or ``OptionTypeError``)
    naming the option; ``execute`` of a write returns the command's reply
    once ``replicas`` replicas confirmed it; redirects, TRYAGAIN (after a
    backoff) and writes that provably did not run are retried,
    ``max_attempts`` in all, then :class:`~clustermgr.errors.ClusterRetryError`.
    Attribute access other than :meth:`execute` is forwarded to the wrapped pool.
    """

    def __init__(
        self, pool: Any, replicas: int = 1, timeout: float = 1.0, *, max_attempts: int = 16,
        margin: float = 1.0, backoff: Backoff | None = None,
    ) -> None:
        check_options(replicas=replicas, max_attempts=max_attempts, margin=margin)
        seconds("timeout", timeout, optional=False)  # (WAIT 0 would block forever)
        self.pool = pool
        self.replicas = replicas
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.margin = margin
        self.backoff = backoff or Backoff()

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
        if not hasattr(self.pool, "node_pools"):  # one master: nothing to route
            return await self._write(command, args, kwargs, None)
        info = _TABLE.lookup(command)
        try:
            slot = info.slot_of(args)
        except CrossSlotError:
            layout = info.split_layout()
            if layout is None:
                raise
            parts = split_by_slot(args, *layout)
            replies = await asyncio.gather(*(
                self._write(command, tuple(part), kwargs, None) for _slot, part, _keys in parts
            ))
            key_count = len(range(layout[0], len(args), layout[1]))
            return merge_split(info.name, parts, list(replies), key_count)
        if slot is not None:
            return await self._write(command, args, kwargs, None)
        sub = _TABLE.info(command, args)
        if sub is not None and sub.request_policy in _FANOUT:  # e.g. FLUSHALL: every master
            replies = await asyncio.gather(*(
                self._write(command, args, kwargs, _always(node)) for node in self._masters()
            ))
            return merge_fanout(sub.response_policy, list(replies))
        return await self._write(command, args, kwargs, lambda: self._masters()[0])

    def _masters(self) -> list[Any]:
        """The pools of the wrapped cluster pool's masters (for keyless writes)."""
        slot_map, pools = self.pool.slot_map, self.pool.node_pools
        found = [
            pools[m.address] for m in (slot_map.masters if slot_map is not None else ())
            if m.address in pools
        ]
        if not found:
            raise RouteError("no master is known for a keyless write")
        return found

    async def _write(
        self, command: bytes | str, args: tuple[Any, ...], kwargs: dict[str, Any],
        node: Callable[[], Any] | None,
    ) -> Any:
        """Send one single-slot write (or a keyless one, to ``node()``) and WAIT, retried."""
        redirect: RedirectError | None = None
        last: RedisError | None = None
        for attempt in range(self.max_attempts):
            try:
                return await self._write_once(command, args, kwargs, redirect, node)
            except RedirectError as exc:
                redirect = last = exc
            except TryAgainError as exc:
                redirect, last = None, exc
                if attempt + 1 < self.max_attempts:
                    await self.backoff.sleep(attempt)
            except _NOT_EXECUTED as exc:
                if exc.may_have_executed:
                    raise
                redirect, last = None, exc
        raise ClusterRetryError(
            f"{command!r} gave up after {self.max_attempts} attempts; last: {last}", last
        ) from last

    async def _write_once(
        self, command: bytes | str, args: tuple[Any, ...], kwargs: dict[str, Any],
        redirect: RedirectError | None, node: Callable[[], Any] | None,
    ) -> Any:
        pool, asking = self.pool, False
        if node is not None:
            pool = node()
        elif redirect is not None:
            # Let the routing pool follow the redirect itself (it learns the
            # route and opens the node's pool): a read of the same key.
            await pool.execute(b"EXISTS", _TABLE.first_key(command, args))
            if isinstance(redirect, AskError):
                pool = pool.redirect_pool(redirect.address)
                if pool is None:
                    raise redirect
                asking = True
        conn = await (pool.acquire() if asking or node is not None else pool.acquire(command, args))
        settled = False
        try:
            if asking:
                conn.execute(b"ASKING").add_done_callback(consume)
            reply = conn.execute(command, *args, **kwargs)
            waited = conn.execute(b"WAIT", self.replicas, max(1, round(self.timeout * 1000)))
            reply.add_done_callback(consume)
            waited.add_done_callback(consume)
            # Both replies, within WAIT's timeout plus a margin; asyncio.wait
            # leaves the futures alone when it is cancelled or times out.
            await asyncio.wait((reply, waited), timeout=self.timeout + self.margin)
            settled = waited.done()
        finally:
            if not settled:  # a silent node, or the caller cancelled: drop the connection
                conn.close()
            pool.release(conn)
        if not settled:
            raise TimeoutError(
                f"{command!r}: no reply to the write and WAIT within "
                f"{self.timeout + self.margin:.1f}s", may_have_executed=True,
            )
        failure = reply.exception()
        if failure is not None:
            raise failure
        result, acked = reply.result(), waited.result()
        if acked < self.replicas:
            raise NotReplicatedError(
                f"{command!r} was applied but only {acked} of {self.replicas} replicas "
                f"confirmed it within {self.timeout}s",
                acked=acked, wanted=self.replicas,
            )
        return result

    def __repr__(self) -> str:
        return f"<WaitReplicas replicas={self.replicas} timeout={self.timeout}s {self.pool!r}>"
