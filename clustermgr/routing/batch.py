"""Many commands, grouped per node pool, one write each; redirects followed in order.

:class:`RoutedBatch` checks and classifies every command before anything is
sent (bad input raises TypeError and nothing goes out), groups them by the
node pool of their route and sends each group with that pool's
``execute_batch``. Replies the router's error table says to retry (MOVED,
ASK, TRYAGAIN, a lost connection, ...) are resent *as batches again*, in
their original order, so commands on one slot keep their order through a
redirect. Every reply that stays an error is an exception instance in place,
with ``may_have_executed`` set: an unknown outcome of a write becomes
:class:`~clustermgr.errors.OutcomeUnknownError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from ..commands import CommandInfo
from ..errors import CrossSlotError, RedirectError
from ..pool import ConnectionsPool
from ..protocol import is_blocking
from ..pubsub import is_pubsub_command
from .actions import Action
from .core import Classified, Router

__all__ = ["RoutedBatch"]

_ARG_TYPES = (bytes, str, int, float, memoryview, bytearray)
_NOT_A_COMMAND = (str, bytes, bytearray, memoryview)

Group = tuple[ConnectionsPool, bool]  # (pool, send ASKING first)


_FAST_TYPES = frozenset({bytes, str, int, float})


def _check(index: int, entry: Any) -> None:
    kind = type(entry)
    if ((kind is not tuple and kind is not list) and (
        isinstance(entry, _NOT_A_COMMAND) or not isinstance(entry, Sequence)
    )) or not entry:
        raise TypeError(
            f"execute_batch: command {index} must be a non-empty sequence "
            f"(command, *args), not {entry!r}"
        )
    command = entry[0]
    if type(command) is not bytes and type(command) is not str:
        raise TypeError(f"execute_batch: command {index} has name {command!r}; "
                        "a name is bytes or str")
    for position, arg in enumerate(entry):
        if type(arg) not in _FAST_TYPES and (
            isinstance(arg, bool) or not isinstance(arg, _ARG_TYPES)
        ):
            raise TypeError(
                f"execute_batch: argument {position} of command {index} ({command!r}) has "
                f"type {type(arg).__name__}; commands take bytes, str, int or float"
            )


class RoutedBatch:
    """One ``execute_batch`` call on a :class:`~.core.Router` (see the module doc)."""

    __slots__ = (
        "_entries",
        "_errors",
        "_first",
        "_infos",
        "_kwargs",
        "_router",
        "_singles",
        "_slots",
        "_todo",
        "_unknown",
        "classified",
        "results",
    )

    def __init__(
        self, router: Router, commands: Sequence[Sequence[Any]], kwargs: dict[str, Any]
    ) -> None:
        if isinstance(commands, _NOT_A_COMMAND) or not isinstance(commands, Sequence):
            raise TypeError(f"execute_batch takes a sequence of commands, not {commands!r}")
        self._router = router
        self._kwargs = kwargs
        self._entries = commands
        self.results: list[Any] = [None] * len(commands)
        #: Built on first need (a retry), from the classification made here.
        self.classified: list[Classified | None] = [None] * len(commands)
        self._infos: list[CommandInfo | None] = [None] * len(commands)
        self._slots: list[int | None] = [None] * len(commands)
        self._singles: dict[int, tuple[bytes | str, tuple[Any, ...]]] = {}
        self._todo: list[int] = []
        self._errors: dict[int, BaseException] = {}
        #: Commands an attempt of which may have run (their final error says so).
        self._unknown: set[int] = set()
        self._first: dict[ConnectionsPool, list[int]] = {}
        first = self._first
        lookup, route, infos, slots = router._lookup, router._route_slot, self._infos, self._slots
        fast = _FAST_TYPES
        for index, entry in enumerate(commands):
            kind = type(entry)
            if (kind is not tuple and kind is not list) or not entry:
                _check(index, entry)  # raises unless an acceptable sequence
            command, args = entry[0], entry[1:]
            if type(command) is not bytes and type(command) is not str:
                _check(index, entry)
            for arg in args:
                if type(arg) not in fast:
                    _check(index, entry)
                    break
            info = lookup(command)
            try:
                slot = info.slot_of(args)
            except CrossSlotError:  # split (or refused) by execute
                slot = None
            if (
                slot is None
                or (info.pubsub and is_pubsub_command(command))
                or (info.is_blocking and is_blocking(command, tuple(args)))
            ):
                self._singles[index] = (command, tuple(args))
                continue
            if info.subcommands and args:
                info = info.subcommand(args[0]) or info
            infos[index] = info if info.name else None
            slots[index] = slot
            pool = route(slot)
            if pool is None:
                self._todo.append(index)
            else:
                group = first.get(pool)
                if group is None:
                    group = first[pool] = []
                group.append(index)

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
        router = self._router
        singles: dict[int, Awaitable[Any]] = {}
        for index, (command, args) in self._singles.items():
            try:
                singles[index] = router.execute(command, *args, **self._kwargs)
            except Exception as exc:
                self.results[index] = exc
        rounds = self._rounds()
        if singles:
            done = await asyncio.gather(rounds, *singles.values(), return_exceptions=True)
            for index, reply in zip(singles, done[1:], strict=True):
                self.results[index] = reply
            if isinstance(done[0], BaseException):
                raise done[0]
        else:
            await rounds
        return self.results

    async def _rounds(self) -> None:
        router = self._router
        budget = router._budget()
        loop = router._loop
        groups = {(pool, False): indexes for pool, indexes in self._first.items()}
        if self._todo:
            for group, indexes in self._group(self._todo, {}).items():
                groups.setdefault(group, []).extend(indexes)
        while groups:
            await self._send(groups)
            if not self._todo:
                return
            self._todo.sort()  # one slot's commands stay in the callers' order
            budget.failures += 1
            redirects = any(
                isinstance(self._errors.get(i), RedirectError) for i in self._todo
            )
            if redirects:
                budget.redirects += 1
            why = budget.spent(loop.time())
            if why is not None or router.closed:
                for index in self._todo:
                    error = self._errors.get(index)
                    c = self._c(index)
                    budget.unknown = index in self._unknown
                    self.results[index] = (
                        router._closed_error() if router.closed
                        else router._exhausted(c, budget, why or "", error)
                    )
                return
            groups = await self._regroup(budget)

    def _group(self, indexes: list[int], forced: dict[int, Group]) -> dict[Group, list[int]]:
        groups: dict[Group, list[int]] = {}
        pending: list[int] = []
        for index in indexes:
            c = self._c(index)
            group = forced.get(index)
            if group is None:
                pool = self._router._batch_route(c)
                if pool is None:
                    pending.append(index)
                    continue
                group = (pool, False)
            c.pool = group[0]
            self._errors.pop(index, None)
            groups.setdefault(group, []).append(index)
        self._todo = pending
        return groups

    async def _regroup(self, budget: Any) -> dict[Group, list[int]]:
        """Decide each failed command's next route; wait once for those that must wait."""
        router = self._router
        forced: dict[int, Group] = {}
        again: list[int] = []
        wait: Action | None = None
        for index in self._todo:
            c = self._c(index)
            error = self._errors.get(index)
            if error is None:  # no route yet
                wait = Action.REFRESH
                again.append(index)
                continue
            action = router._actions.action(error, c.readonly)
            if action is Action.FAIL:
                self.results[index] = error
                continue
            if action is Action.REFUSE:
                self.results[index] = router._refuse(c, error)
                continue
            if action is Action.MOVED or action is Action.ASK:
                ask = action is Action.ASK
                forced[index] = (router._redirect(c, error, ask), ask)
            elif action is Action.REFRESH or wait is None:
                wait = action
            again.append(index)
        remaining = budget.remaining(router._loop.time())
        if wait is Action.REFRESH:
            await router._wait_route(self._c(again[0]), budget, "batch reply")
        elif wait is Action.REFRESH_LATER:
            router._request_refresh("batch reply")
            await router._backoff.sleep(budget.failures - 1, remaining)
        elif wait is Action.BACKOFF:
            await router._backoff.sleep(budget.failures - 1, remaining)
        return self._group(again, forced)

    async def _send(self, groups: dict[Group, list[int]]) -> None:
        sent: list[tuple[list[int], bool, Awaitable[list[Any]] | BaseException]] = []
        for (pool, ask), indexes in groups.items():
            entries = self._entries
            if ask:
                commands: list[Sequence[Any]] = []
                for index in indexes:
                    commands += ((b"ASKING",), entries[index])
            else:
                commands = [entries[index] for index in indexes]
            try:
                sent.append((indexes, ask, pool.execute_batch(commands, **self._kwargs)))
            except Exception as exc:
                sent.append((indexes, ask, exc))
        waits = [s for _, _, s in sent if not isinstance(s, BaseException)]
        done = iter(await asyncio.gather(*waits, return_exceptions=True))
        for (pool, _ask), (indexes, ask, awaited) in zip(groups, sent, strict=True):
            outcome = awaited if isinstance(awaited, BaseException) else next(done)
            if isinstance(outcome, BaseException):
                replies: list[Any] = [outcome] * len(indexes)
            else:
                replies = outcome[1::2] if ask else outcome
            for index, reply in zip(indexes, replies, strict=True):
                action = (
                    self._router._actions.of_type(type(reply))
                    if isinstance(reply, BaseException) else Action.FAIL
                )
                if action is Action.FAIL:
                    self.results[index] = reply
                else:
                    self._router._observe(self._c(index), pool, reply)
                    self._errors[index] = reply
                    self._todo.append(index)
                    if getattr(reply, "may_have_executed", False):
                        self._unknown.add(index)
