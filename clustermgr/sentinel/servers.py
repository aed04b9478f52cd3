"""Opening ROLE-verified pools to data nodes, and closing (fencing) replaced ones.

The mechanics under :class:`~.failover.Follower`: it decides *which* servers
to use; :class:`Servers` opens a pool whose every connection answered
``ROLE`` as expected, and closes pools of replaced servers, connections
acquired by callers included, keeping them until they are fully closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .._timeout import timeout as _timeout
from ..bounds import ROUTED_CONNECT_TIMEOUT
from ..connection import RedisConnection
from ..errors import PoolClosedError, RedisError, TimeoutError
from ..pool import ConnectionsPool
from ._common import Address, Tasks, address_text, logger
from .discovery import check_role
from .errors import RoleMismatchError
from .hooks import PoolHooks

__all__ = ["ServerPool", "Servers"]

Failures = list[tuple[Address, BaseException]]


class ServerPool(ConnectionsPool):
    """The pool to one data node; pub/sub commands go through the SentinelPool.

    Every connection it opens, the first ones and any it opens later on its
    own (growth, an exclusive command, pub/sub, after a drop), must answer
    ``ROLE`` as ``role`` *and* come from the server process the first one
    reached (same ``run_id``). A server restarted on the address (an old
    master back as a master, before the sentinels reconfigure it) is refused
    with :class:`RoleMismatchError`: only the Follower, asking the sentinels,
    may decide to use it again, with a new pool.

    When ``INFO`` is denied (ACL ``-info``) the ``run_id`` is unknown and a
    restart cannot be told apart. Then the pool opens a new connection only
    while another one to the server is still open (a restart would have
    closed it): once every connection is gone, the next one is refused with
    :class:`RoleMismatchError` and the Follower asks the sentinels (with its
    epoch check) before a new pool is opened to the address.
    """

    #: The SentinelPool's ``execute_pubsub`` while this pool serves it.
    route_pubsub: Callable[..., Awaitable[Any]] | None = None

    def __init__(
        self, address: Any, *, role: str, unverified: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address, on_connect=self._verify, **kwargs)
        self._role = role
        self._unverified = unverified
        #: ``run_id`` of the server process this pool was opened to (None: not
        #: connected yet; "" unknown, INFO not allowed).
        self.run_id: str | None = None
        #: True once a connection reached another process on the address
        #: (or, run_id unknown, one was opened after every other was lost).
        self.restarted = False
        #: False once :class:`Servers` has verified and handed out the pool.
        self.opening = True
        self._verified: list[RedisConnection] = []
        self._verifying: set[RedisConnection] = set()

    def close(self) -> None:
        """Close the pool, connections still being verified included."""
        for conn in list(self._verifying):
            conn.close()
        super().close()

    async def _verify(self, conn: RedisConnection) -> None:
        self._verifying.add(conn)
        try:
            run_id = await check_role(conn, self._role)
        finally:
            self._verifying.discard(conn)
        if run_id is None:  # ROLE not allowed: the sentinels' view stands
            if self._unverified is not None:
                self._unverified(conn.address)
            run_id = ""
        self._verified = [c for c in self._verified if not c.closed]
        if self.run_id is None:
            self.run_id = run_id
        elif run_id != self.run_id:
            self.restarted = True
            raise RoleMismatchError(
                conn.address, self._role,
                f"a restarted server (run_id {run_id[:8]}, was {self.run_id[:8]})")
        elif not run_id and not self.opening and not self._verified:
            self.restarted = True
            raise RoleMismatchError(
                conn.address, self._role,
                "every connection was lost and INFO is denied (run_id unknown): "
                "the server may have restarted")
        self._verified.append(conn)

    def execute_pubsub(self, command: bytes | str, *channels: Any) -> Any:
        route = self.route_pubsub
        if route is None:
            return super().execute_pubsub(command, *channels)
        return route(command, *channels)


class Servers:
    """Server pools of one SentinelPool: opened verified, closed when replaced."""

    def __init__(
        self, hooks: PoolHooks[ServerPool], role: str, pool_kwargs: dict[str, Any],
        tasks: Tasks,
    ) -> None:
        self._hooks = hooks
        self._role = role
        self._pool_kwargs = pool_kwargs
        self._tasks = tasks
        self._retired: list[ServerPool] = []
        self._opening: set[ServerPool] = set()
        self._told_unverified = False

    def _unverified(self, address: Any) -> None:
        """ROLE was refused on ``address``: say once that the weaker check is used."""
        if self._told_unverified:
            return
        self._told_unverified = True
        logger.warning(
            "ROLE is not allowed for this user on %s: the %s role is taken from the "
            "sentinels' majority view, unverified (a demoted master is noticed by its "
            "READONLY replies or its closed connections)", address_text(address), self._role,
        )

    @property
    def check_timeout(self) -> float:
        """Seconds a ROLE check of a server in use may take (the connect bound, else 2 s)."""
        bound = self._pool_kwargs.get("create_connection_timeout")
        return ROUTED_CONNECT_TIMEOUT if bound is None else float(bound)

    async def open(self, address: Address, reuse: Iterable[ServerPool] = ()) -> ServerPool:
        """A pool to ``address`` whose connections answered ROLE as expected.

        An open pool to that address in ``reuse`` is checked again and returned,
        unless its server restarted since (then a new pool is opened).
        """
        for pool in reuse:
            if not pool.closed and not pool.restarted and pool.address == address:
                try:
                    async with _timeout(self.check_timeout):
                        conn = await pool.acquire()
                        try:
                            await check_role(conn, self._role)
                        finally:
                            pool.release(conn)
                except asyncio.TimeoutError as exc:
                    raise TimeoutError(f"{self._role} {address_text(address)} did not answer "
                                       "ROLE in time") from exc
                return pool
        pool = ServerPool(
            address, role=self._role, unverified=self._unverified, **self._pool_kwargs
        )
        self._opening.add(pool)
        try:
            await pool.fill()
            if pool.size == 0:  # minsize=0: verify with one connection anyway
                pool.release(await pool.acquire())
            if pool.closed:  # fenced while it was being opened
                raise PoolClosedError(f"{self._role} {address_text(address)} was fenced")
        except BaseException:
            pool.close()
            await pool.wait_closed()
            raise
        finally:
            self._opening.discard(pool)
        pool.opening = False
        pool.route_pubsub = self._hooks.execute_pubsub
        self._hooks.adopt(pool)
        return pool

    async def open_all(
        self, addresses: Iterable[Address], *, first_only: bool,
        reuse: Iterable[ServerPool] = (),
    ) -> tuple[list[ServerPool], Failures]:
        """Pools to ``addresses``: the first that works, or all that work (in parallel)."""
        addresses = list(addresses)
        reuse = list(reuse)
        errors: Failures = []
        if first_only:
            for address in addresses:
                try:
                    return [await self.open(address, reuse)], errors
                except (RedisError, OSError) as exc:
                    errors.append((address, exc))
            return [], errors
        results = await asyncio.gather(
            *(self.open(a, reuse) for a in addresses), return_exceptions=True
        )
        pools: list[ServerPool] = []
        for address, result in zip(addresses, results, strict=True):
            if isinstance(result, ServerPool):
                pools.append(result)
            elif isinstance(result, (RedisError, OSError)):
                errors.append((address, result))
            elif isinstance(result, BaseException):
                for pool in pools:
                    if pool not in reuse:
                        self.discard(pool)
                raise result
        return pools, errors

    def fence(self, pool: ServerPool, reason: str) -> None:
        """Close every connection to a replaced server, acquired ones included.

        Pools still being opened to its address are closed too (their open fails).
        """
        if isinstance(pool.address, tuple):
            self.fence_opening(pool.address)
        if pool.closed:
            return
        count = pool.size + (1 if pool.in_pubsub else 0)
        self.discard(pool)
        logger.info("fenced %d connections to old %s %s (%s)",
                    count, self._role, address_text(pool.address), reason)

    def fence_opening(self, address: Address) -> None:
        """Close the pools being opened to ``address``: their open fails at once."""
        for pool in list(self._opening):
            if pool.address == address:
                pool.close()

    def discard(self, pool: ServerPool) -> None:
        """Close a pool (kept until fully closed, for :meth:`wait_closed`)."""
        pool.route_pubsub = None
        self._hooks.forget(pool)
        pool.close()
        self._retired.append(pool)
        self._tasks.spawn(self._reap(pool))

    async def _reap(self, pool: ServerPool) -> None:
        await pool.wait_closed()
        if pool in self._retired:
            self._retired.remove(pool)

    async def wait_closed(self) -> None:
        """Wait until every discarded pool is closed."""
        await asyncio.gather(*(p.wait_closed() for p in list(self._retired)))
