"""Reading the slot map from the nodes: which nodes to ask, in what order, probe then read.

:class:`MapReader` asks nodes for their views of the slot map. A reload asks
them in batches (:meth:`MapReader.candidates`) until a batch gives views
covering slots; a poll asks one node's ``CLUSTER INFO`` first and reads its
view only when that shows news (see :mod:`~clustermgr.cluster.probe`). It
applies nothing: it returns the views, and tells ``report`` which node
answered or failed. It sees the node pools only through the callables given.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from .._timeout import timeout as _timeout
from ..address import address_text
from ..connection import create_connection
from ..credentials import CredentialProviderError
from ..errors import AuthError, ConnectError, RedisError, ReplyError
from ..health import describe_failure
from ..pool import ConnectionsPool
from ..remap import AddressRemap, AddressRemapError
from .probe import ClusterInfo, MapProbe
from .refresh import RefreshOptions
from .topology import Address, SlotMap, read_slot_map

__all__ = ["MapReader"]

logger = logging.getLogger("clustermgr.cluster")

_T = TypeVar("_T")
# A reload failing with these on every node it asked fails with the first of
# them (typed): a wrong password or a broken provider is not mended by a retry.
_NEVER_RETRIED = (AuthError, CredentialProviderError)


async def _nothing() -> None:
    return None


class MapReader:
    """Reads views of the slot map from the nodes (see module doc).

    ``current()`` is the map last applied; ``down()`` the nodes reported down;
    ``node_pool(address)`` makes (or gets) a node's pool, ``pool_of(address)``
    gets one without making it; ``report(address, up, reason)`` records each
    node's answer or failure; ``remap`` turns announced addresses into the
    ones to connect to (its :class:`~clustermgr.remap.AddressRemapError`
    fails the read); ``state(address, ok)`` is told the cluster state each
    ``CLUSTER INFO`` shows.
    """

    def __init__(
        self,
        *,
        startup: Sequence[Address],
        options: RefreshOptions,
        tls: bool,
        conn_kwargs: Mapping[str, Any],
        current: Callable[[], SlotMap | None],
        down: Callable[[], frozenset[Address]],
        node_pool: Callable[[Address], ConnectionsPool],
        pool_of: Callable[[Address], ConnectionsPool | None],
        report: Callable[[Address, bool, str], None],
        remap: AddressRemap | None = None,
        state: Callable[[Address, bool], None] | None = None,
    ) -> None:
        self._startup = list(startup)
        self._options = options
        self._tls = tls
        self._conn_kwargs = dict(conn_kwargs)
        self._current = current
        self._down = down
        self._node_pool = node_pool
        self._pool_of = pool_of
        self._report = report
        self._remap = remap
        self._state = state
        self._info = MapProbe()  # CLUSTER INFO seen per node: is a poll worth a full read?
        self._polled: Address | None = None  # the node polls ask first, while it answers
        #: How many times views of the slot map were read (reloads, polls that read).
        self.reads = 0

    def candidates(self, batch: int) -> list[list[Address]]:
        """Nodes to ask, in batches: the replicas of masters reported down (the
        one promoted knows first), known masters (each group shuffled), then
        the startup nodes; nodes reported down come last, in batches of their
        own, so a dead or frozen node does not slow down the reloads."""
        down = self._down()
        current = self._current()
        heirs: list[Address] = []
        known: list[Address] = []
        if current is not None:
            known = [m.address for m in current.masters]
            heirs = [r.address for shard in current.distinct if shard.master.address in down
                     for r in shard.replicas]
        random.shuffle(heirs)
        random.shuffle(known)
        seen: dict[Address, None] = {}
        for address in (*heirs, *known, *self._startup):
            seen.setdefault(address, None)
        batches: list[list[Address]] = []
        for group in ([a for a in seen if a not in down], [a for a in seen if a in down]):
            batches.extend(group[i : i + batch] for i in range(0, len(group), batch))
        return batches

    async def read(self, batch: int) -> list[SlotMap]:
        """The covering views of the first batch of :meth:`candidates` that gives any.

        Raises :class:`~clustermgr.errors.ConnectError` when no node gave one (or
        the credentials error, typed, when every node refused them)."""
        self.reads += 1
        maps: list[SlotMap] = []
        errors: list[str] = []
        refused: list[BaseException] = []  # failures no retry can mend (credentials)
        for chunk in self.candidates(batch):
            results = await asyncio.gather(
                *(self._query(a) for a in chunk), return_exceptions=True
            )
            for address, result in zip(chunk, results, strict=True):
                if isinstance(result, AddressRemapError):
                    raise result  # the user's callable, not the node, failed
                if isinstance(result, SlotMap):
                    self._report(address, True, "answered CLUSTER INFO")
                    if result.covered:
                        maps.append(result)
                elif isinstance(result, (Exception, asyncio.TimeoutError)):
                    if isinstance(result, _NEVER_RETRIED):
                        refused.append(result)
                    problem = describe_failure(result)
                    errors.append(f"{address_text(address)}: {problem}")
                    self._report(address, False, f"slot map query failed: {problem}")
                else:  # pragma: no cover - CancelledError and friends
                    raise result
            if maps:
                return maps
        if refused and len(refused) == len(errors):  # every node refused the credentials
            raise refused[0]
        raise ConnectError("no cluster node returned a slot map (" + "; ".join(errors[-3:]) + ")")

    async def poll(self) -> SlotMap | None:
        """One node's view if its ``CLUSTER INFO`` shows news, else None (the map
        stands); the next node only when one fails or gives a view covering no
        slot. Where ``CLUSTER INFO`` is refused (ACL), every poll reads the view.
        Raises :class:`~clustermgr.errors.ConnectError` when no node answered."""
        errors: list[str] = []
        for address in self._poll_order():
            try:
                view = await self.on_node(
                    address, functools.partial(self._poll_node, address), pooled=True
                )
            except AddressRemapError:
                raise  # the user's callable, not the node, failed
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                problem = describe_failure(exc)
                errors.append(f"{address_text(address)}: {problem}")
                self._report(address, False, f"slot map query failed: {problem}")
                continue
            self._report(address, True, "answered CLUSTER INFO")
            self._polled = address
            if view is None:
                return None
            self.reads += 1
            if view.covered:
                return view
        raise ConnectError("no cluster node answered a poll (" + "; ".join(errors[-3:]) + ")")

    def _poll_order(self) -> list[Address]:
        """The node that answered the last poll first (its INFO is compared with its
        own last read), then the others as reloads ask them."""
        order = [a for batch in self.candidates(1) for a in batch]
        polled = self._polled
        if polled is not None and polled in order and polled not in self._down():
            order.remove(polled)
            order.insert(0, polled)
        return order

    async def _poll_node(self, address: Address, execute: Any) -> SlotMap | None:
        """The view of ``address`` if its answers call for a read, else None.

        ``CLUSTER INFO`` is compared by the probe (a node the map does not name,
        a seed, is read at once); a replica of a master reported
        down is also asked ``ROLE``: once it says master (a promotion that moved
        no epoch, ``CLUSTER FAILOVER TAKEOVER``), its view is read."""
        probe = self._info
        current = self._current()
        member = current is not None and any(n.address == address for n in current.nodes)
        if probe.refused or not member:  # a seed may now name another cluster: read it
            return await self._read_view(address, execute)
        loop = asyncio.get_running_loop()
        ask_role = not probe.role_refused and self._is_heir(address)
        replies = await asyncio.gather(
            execute(b"CLUSTER", b"INFO", encoding=None),
            execute(b"ROLE", encoding=None) if ask_role else _nothing(),
            return_exceptions=True,
        )
        reply, role = replies
        sent: asyncio.Future[Any] = loop.create_future()
        if isinstance(reply, ReplyError):  # not allowed (ACL): read the view every time
            probe.refused = True
            logger.info("CLUSTER INFO refused by %s (%s): each poll reads the slot map",
                        address_text(address), reply)
            sent.set_exception(reply)
            return await read_slot_map(
                execute, address, tls=self._tls, info=sent, remap=self._remap
            )
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(role, ReplyError):
            probe.role_refused = True
        info = ClusterInfo.parse(reply)
        if self._state is not None:  # wakes CLUSTERDOWN-held commands before any read
            self._state(address, info.state_ok)
        promoted = isinstance(role, list) and bool(role) and role[0] in (b"master", "master")
        epoch = current.epoch if current is not None else None
        if not probe.worth_reading(address, info, loop.time(), epoch) and not promoted:
            return None
        sent.set_result(reply)
        view = await read_slot_map(
            execute, address, tls=self._tls, info=sent, remap=self._remap
        )
        probe.note_read(address, info)
        return view

    def _is_heir(self, address: Address) -> bool:
        """A replica, in the current map, of a master reported down."""
        current = self._current()
        if current is None:
            return False
        down = self._down()
        return any(
            shard.master.address in down and any(r.address == address for r in shard.replicas)
            for shard in current.distinct
        )

    async def _query(self, address: Address) -> SlotMap:
        return await self.on_node(address, functools.partial(self._read_view, address))

    async def on_node(
        self, address: Address, ask: Callable[[Any], Awaitable[_T]], *, pooled: bool = False
    ) -> _T:
        """``ask(execute)`` on the node's pool, or on a connection of its own if it
        has none, within ``node_timeout``. ``pooled``: a node not reported down
        gets a pool (polls come every ``hold_interval``; a replica's pool is
        retired by the next map that does not route to it)."""
        async with _timeout(self._options.node_timeout):
            if pooled and address not in self._down():
                self._node_pool(address)
            pool = self._pool_of(address)
            if pool is not None and not pool.closed:
                return await ask(pool.execute)
            conn = await create_connection(address, **self._conn_kwargs)
            try:
                return await ask(conn.execute)
            finally:
                conn.close()
                await conn.wait_closed()

    async def _read_view(self, address: Address, execute: Any) -> SlotMap:
        """The node's view; the CLUSTER INFO read with it is what later polls compare."""
        info = asyncio.ensure_future(execute(b"CLUSTER", b"INFO", encoding=None))
        view = await read_slot_map(
            execute, address, tls=self._tls, info=info, remap=self._remap
        )
        if info.done() and not info.cancelled() and info.exception() is None:
            parsed = ClusterInfo.parse(info.result())
            self._info.note_read(address, parsed)
            if self._state is not None:
                self._state(address, parsed.state_ok)
        return view

    async def probe_state(self, address: Address) -> None:
        """Tell ``state`` what ``address``'s ``CLUSTER INFO`` says (a node that
        refused with CLUSTERDOWN, asked beside each poll); a failure says nothing."""
        try:
            reply = await self.on_node(
                address, lambda execute: execute(b"CLUSTER", b"INFO", encoding=None)
            )
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            logger.debug("CLUSTER INFO of %s failed: %s", address_text(address), exc)
            return
        if self._state is not None:
            self._state(address, ClusterInfo.parse(reply).state_ok)
