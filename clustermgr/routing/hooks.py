"""The routed hot path's cache: one error hook per command kind and node pool.

The router's ``_send_fast`` reads the table as a plain dict (``info`` ->
``pool`` -> ``(hook, plain)``); a miss goes through :meth:`HookTable.entry`,
which makes the entry once. ``plain`` says whether the kind goes through the
pool's ``execute_plain`` (:func:`plain_kind`, judged once per kind).
"""

from __future__ import annotations

from collections.abc import Callable

from ..commands import CommandInfo
from ..connection import is_plain
from ..pool import ConnectionsPool

__all__ = ["HookTable", "plain_kind"]

Hook = Callable[..., bool]
Entry = tuple[Hook, bool]


def plain_kind(info: CommandInfo | None) -> bool:
    """True if every command of ``info``'s kind is plain (see
    :func:`~clustermgr.connection.is_plain`); False for unknown commands."""
    if info is None or not info.name:
        return False
    return is_plain(info.name.partition("|")[0])


class HookTable(dict[CommandInfo, dict[ConnectionsPool, Entry]]):
    """``info`` -> ``pool`` -> ``(hook, plain)``, made by ``make_hook(info, pool)``."""

    def __init__(self, make_hook: Callable[[CommandInfo, ConnectionsPool], Hook]) -> None:
        super().__init__()
        self._make_hook = make_hook
        self._plain_kinds: dict[CommandInfo, bool] = {}

    def entry(self, info: CommandInfo, pool: ConnectionsPool) -> Entry:
        """The entry of (``info``, ``pool``), made on first use."""
        per_pool = self.get(info)
        if per_pool is None:
            per_pool = self[info] = {}
        entry = per_pool.get(pool)
        if entry is None:
            entry = per_pool[pool] = (
                self._make_hook(info, pool), pool.takes_plain and self.plain(info),
            )
        return entry

    def plain(self, info: CommandInfo) -> bool:
        """:func:`plain_kind`, judged once per command kind (a dict hit after that)."""
        plain = self._plain_kinds.get(info)
        if plain is None:
            plain = self._plain_kinds[info] = plain_kind(info)
        return plain

    def forget(self, pool: ConnectionsPool) -> None:
        """Drop the entries of a node pool that was retired."""
        for per_pool in self.values():
            per_pool.pop(pool, None)
