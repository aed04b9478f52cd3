"""Many commands, grouped per node pool, one write each; redirects followed in order.

What :class:`RoutedBatch` sends was checked and cut into segments first, by
:class:`~.batchplan.BatchPlan` (bad input raises before anything is sent).

Order. The segments run one after the other. Inside a segment the commands
are grouped by the node pool of their slot and each group goes out as one
batch. Per slot, the commands are sent in the callers' order, in one run up
to the first command that names a key of a *multi-key* command before it in
the run (a migrating slot answers a multi-key command TRYAGAIN while a later
command on one of its keys may be served): that command and the rest of the
slot wait for the multi-key command's reply. When a node refuses a command
(MOVED, ASK, TRYAGAIN, CLUSTERDOWN, a lost connection of a read-only
command, ...), that command and every later command of its slot that was
refused too are resent in their order, before the rest of the slot.

What this guarantees, exactly: the commands of one slot are *sent* in batch
order, and a refused command is resent before any later command of its slot
is sent for the first time. A command that a node refused cannot have been
overtaken by a later command of its slot -- unless that later command was in
the same write and the node *accepted* it after refusing the earlier one.
That happens only when the slot's state changes on that node while the write
is being served: the node takes the slot over (MOVED, then served) or a
migration ends or is undone mid-write (ASK, then served). Such a command ran
before the refused one; its reply is in place and it is not resent. While a
slot is merely being migrated, a later command on the *same key* is refused
like the first (the key is on the target), so one key's commands keep their
order; a multi-key command refused with TRYAGAIN holds back the later commands
on its keys (and the rest of its slot) until it has run.

Every reply that stays an error is an exception instance in place with
``may_have_executed`` set: an unknown outcome of a write becomes
:class:`~clustermgr.errors.OutcomeUnknownError`. If the pool is closed while
the batch runs, the commands on the wire get
:class:`~clustermgr.errors.ConnectionForcedCloseError` (``may_have_executed``
True) and those not yet sent :class:`~clustermgr.errors.PoolClosedError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..errors import ConnectionForcedCloseError, RedirectError
from ..pool import ConnectionsPool
from .actions import Action, Budget
from .batchplan import BatchPlan
from .core import Classified, Router

__all__ = ["RoutedBatch"]

Group = tuple[ConnectionsPool, bool]  # (pool, send ASKING first)
_PENDING: Any = object()  # a result not known yet


def _key_bytes(key: Any) -> bytes:
    if type(key) is bytes:
        return key
    if type(key) is str:
        return key.encode()
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    return str(key).encode()  # an int or float key is sent as its text


class RoutedBatch:
    """One ``execute_batch`` call on a :class:`~.core.Router` (see the module doc)."""

    __slots__ = (
        "_barriers",
        "_budget",
        "_checked",
        "_entries",
        "_errors",
        "_forced",
        "_infos",
        "_kwargs",
        "_ordered",
        "_retried",
        "_router",
        "_segments",
        "_slots",
        "_unknown",
        "_wire",
        "classified",
        "results",
    )

    def __init__(
        self, router: Router, commands: Sequence[Sequence[Any]], kwargs: dict[str, Any]
    ) -> None:
        plan = BatchPlan(commands, kwargs, router._lookup, router._plain_kind)
        self._router = router
        self._kwargs = kwargs
        self._entries = commands
        size = len(commands)
        self.results: list[Any] = [_PENDING] * size
        #: Built on first need (a retry), from the classification made here.
        self.classified: list[Classified | None] = [None] * size
        self._infos = plan.infos
        self._slots = plan.slots
        self._barriers = plan.barriers
        self._checked = plan.checked
        self._segments = plan.segments
        self._ordered = plan.ordered
        self._errors: dict[int, BaseException] = {}
        #: Commands an attempt of which may have run (their final error says so).
        self._unknown: set[int] = set()
        #: Commands resent after a failure, and where a redirect sends them.
        self._retried: set[int] = set()
        self._forced: dict[int, Group] = {}
        #: Commands written and not answered yet (what a close interrupts).
        self._wire: list[Sequence[int]] = []
        self._budget: Budget | None = None

    def _c(self, index: int) -> Classified:
        c = self.classified[index]
        if c is None:
            entry = self._entries[index]
            c = self.classified[index] = Classified(
                self._router, entry[0], tuple(entry[1:]), self._kwargs, self._infos[index],
                self._slots[index],
            )
        return c

    async def run(self) -> list[Any]:
        """Send everything; the replies (or errors, in place) in the callers' order."""
        try:
            for position, segment in enumerate(self._segments):
                if isinstance(segment, int):
                    await self._single(segment)
                elif position in self._ordered:
                    await self._rounds(self._queues(segment))
                else:
                    await self._grouped(segment)
        except asyncio.CancelledError:
            if not self._router.closed:
                raise  # the caller gave up
            self._closed()
        return self.results

    def _closed(self) -> None:
        """The pool closed under the batch: every command not answered gets its error."""
        router = self._router
        answered = self.results
        wire = {index for indexes in self._wire for index in indexes}
        for segment in self._segments:
            for index in [segment] if isinstance(segment, int) else segment:
                if index in wire:
                    answered[index] = ConnectionForcedCloseError(
                        "the pool was closed while the command was on the wire",
                        may_have_executed=True,
                    )
                elif answered[index] is _PENDING:
                    error = self._errors.get(index)
                    answered[index] = (
                        error if error is not None and index in self._unknown
                        else router._closed_error()
                    )

    async def _single(self, index: int) -> None:
        entry = self._entries[index]
        self._wire.append((index,))
        try:
            self.results[index] = await self._router.execute(
                entry[0], *entry[1:], **self._kwargs
            )
        except Exception as exc:
            self.results[index] = exc
        self._wire.clear()

    def _budget_now(self) -> Budget:
        if self._budget is None:
            self._budget = self._router._budget()
        return self._budget

    def _route(self, index: int) -> Group | None:
        """Where ``index`` goes next: its redirect, else its slot's pool (None: no route)."""
        group = self._forced.get(index)
        if group is not None:
            return group
        if index in self._retried:
            pool = self._router._batch_route(self._c(index))
        else:
            pool = self._router._route_slot(self._slots[index])
        return None if pool is None else (pool, False)

    def _queues(self, indexes: list[int]) -> dict[int, list[int]]:
        """``indexes`` per slot, in order."""
        queues: dict[int, list[int]] = {}
        slots = self._slots
        for index in indexes:
            queue = queues.get(slots[index])
            if queue is None:
                queues[slots[index]] = [index]
            else:
                queue.append(index)
        return queues

    async def _grouped(self, indexes: list[int]) -> None:
        """A segment where no slot has a command after a multi-key one: all in one
        round (one write per node pool), then the refused ones in rounds."""
        by_pool: dict[ConnectionsPool, list[int]] = {}
        pending: list[int] = []
        route, slots = self._router._route_slot, self._slots
        for index in indexes:
            pool = route(slots[index])
            if pool is None:
                pending.append(index)
                continue
            group = by_pool.get(pool)
            if group is None:
                by_pool[pool] = [index]
            else:
                group.append(index)
        refused = await self._send({(pool, False): group for pool, group in by_pool.items()})
        if not refused and not pending:
            return
        queues = {slot: list(again) for slot, again in refused.items()}
        for index in pending:  # a slot without a route: none of it was sent
            queues.setdefault(slots[index], []).append(index)
        if await self._next_round(queues, refused, pending[0] if pending else None):
            await self._rounds(queues)

    async def _rounds(self, queues: dict[int, list[int]]) -> None:
        """Per-slot runs, one write per node pool per round, until every queue is done."""
        barriers, forced, retried = self._barriers, self._forced, self._retried
        while queues:
            groups: dict[Group, list[int]] = {}
            runs: list[tuple[int, int]] = []  # (slot, how many of its queue were sent)
            no_route: int | None = None
            for slot, queue in queues.items():
                group = self._route(queue[0])
                if group is None:
                    no_route = queue[0]
                    continue
                if not barriers and not forced and not retried:
                    taken = len(queue)  # the common case: all of the slot in one run
                else:
                    taken = self._run_length(queue, group)
                target = groups.get(group)
                if target is None:
                    groups[group] = queue[:taken]
                else:
                    target += queue[:taken]
                runs.append((slot, taken))
            refused: dict[int, list[int]] = {}
            if groups:
                refused = await self._send(groups)
            for slot, taken in runs:
                queue = queues[slot]
                again = refused.get(slot)
                rest = queue[taken:]
                queue = again + rest if again else rest
                if queue:
                    queues[slot] = queue
                else:
                    del queues[slot]
            if not refused and no_route is None:
                continue
            if not await self._next_round(queues, refused, no_route):
                return

    def _run_length(self, queue: list[int], group: Group) -> int:
        """How many of ``queue`` go out now: those routed like its head, up to (not
        including) the first that names a key of a multi-key command before it
        in the run -- that one waits for the multi-key command's reply."""
        barriers, forced, retried = self._barriers, self._forced, self._retried
        held: set[Any] = set()
        plain: Group | None = None
        taken = 0
        for index in queue:
            if taken:
                if index in forced or index in retried:
                    if self._route(index) != group:
                        break
                else:
                    if plain is None:
                        plain = self._route(index)
                    if plain != group:
                        break
                if held and not held.isdisjoint(self._keys(index)):
                    break
            if index in barriers:
                held.update(self._keys(index))
            taken += 1
        return taken

    def _keys(self, index: int) -> list[Any]:
        """The keys of command ``index``, as bytes (``"k"`` and ``b"k"`` are one key)."""
        info = self._infos[index]
        args = self._entries[index][1:]
        if info is None:
            keys: list[Any] = list(args[:1])
        else:
            keys = info.keys_of(tuple(args))
        return [_key_bytes(key) for key in keys]

    async def _next_round(
        self, queues: dict[int, list[int]], refused: dict[int, list[int]], no_route: int | None
    ) -> bool:
        """Decide each refused command's next route and wait once; False: the budget is spent."""
        router = self._router
        budget = self._budget_now()
        budget.failures += 1
        wait: Action | None = Action.REFRESH if no_route is not None else None
        wait_for = no_route
        redirected = False
        for slot, indexes in refused.items():
            for index in indexes:
                c = self._c(index)
                error = self._errors[index]
                action = router._actions.action(error, c.readonly)
                if action is Action.FAIL or action is Action.REFUSE:
                    self.results[index] = (
                        error if action is Action.FAIL else router._refuse(c, error)
                    )
                    queues[slot].remove(index)
                    continue
                self._retried.add(index)
                if action is Action.MOVED or action is Action.ASK:
                    redirected = redirected or isinstance(error, RedirectError)
                    ask = action is Action.ASK
                    self._forced[index] = (router._redirect(c, error, ask), ask)
                elif action is Action.REFRESH or wait is None:
                    wait = action
                    wait_for = index if wait_for is None else wait_for
            if not queues[slot]:
                del queues[slot]
        if redirected:
            budget.redirects += 1
        loop = router._loop
        why = budget.spent(loop.time())
        if why is not None or router.closed:
            for queue in queues.values():
                for index in queue:
                    last = self._errors.get(index)
                    budget.unknown = index in self._unknown
                    self.results[index] = (
                        (last if budget.unknown and last is not None
                         else router._closed_error()) if router.closed
                        else router._exhausted(self._c(index), budget, why or "", last)
                    )
            queues.clear()
            return False
        remaining = budget.remaining(loop.time())
        if wait is Action.REFRESH and wait_for is not None:
            await router._wait_route(self._c(wait_for), budget, "batch reply")
        elif wait is Action.REFRESH_LATER:
            router._request_refresh("batch reply")
            await router._backoff.sleep(budget.failures - 1, remaining)
        elif wait is Action.BACKOFF:
            await router._backoff.sleep(budget.failures - 1, remaining)
        return True

    async def _send(self, groups: dict[Group, list[int]]) -> dict[int, list[int]]:
        """Send each group as one batch; the refused commands per slot, in order."""
        sent: list[Any] = []
        entries = self._entries
        forced = self._forced
        for (pool, ask), indexes in groups.items():
            if ask:
                commands: list[Sequence[Any]] = []
                for index in indexes:
                    commands += ((b"ASKING",), entries[index])
            else:
                commands = [entries[index] for index in indexes]
            if forced:
                for index in indexes:
                    forced.pop(index, None)
            self._wire.append(indexes)
            checked = self._checked
            plain = pool.takes_plain and not (checked and not checked.isdisjoint(indexes))
            try:
                if plain:
                    sent.append(pool.execute_plain_batch(commands, **self._kwargs))
                else:
                    sent.append(pool.execute_batch(commands, **self._kwargs))
            except Exception as exc:
                sent.append(exc)
        waits = [s for s in sent if not isinstance(s, BaseException)]
        done = iter(await asyncio.gather(*waits, return_exceptions=True))
        self._wire.clear()
        refused: dict[int, list[int]] = {}
        router = self._router
        of_type = router._actions.of_type
        for ((pool, ask), indexes), awaited in zip(groups.items(), sent, strict=True):
            outcome = awaited if isinstance(awaited, BaseException) else next(done)
            if isinstance(outcome, BaseException):
                replies: list[Any] = [outcome] * len(indexes)
            else:
                replies = outcome[1::2] if ask else outcome
            errors = self._errors
            for index, reply in zip(indexes, replies, strict=True):
                if not isinstance(reply, BaseException) or of_type(type(reply)) is Action.FAIL:
                    self.results[index] = reply
                    if errors:
                        errors.pop(index, None)
                    continue
                c = self._c(index)
                c.pool = pool
                router._observe(c, pool, reply)
                self._errors[index] = reply
                if getattr(reply, "may_have_executed", False):
                    self._unknown.add(index)
                slot_refused = refused.get(self._slots[index])
                if slot_refused is None:
                    refused[self._slots[index]] = [index]
                else:
                    slot_refused.append(index)
        return refused
