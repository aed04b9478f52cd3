"""Redirects alone: where MOVED and ASK lead, what they count, announce and fix."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from clustermgr.cluster.redirects import Redirects
from clustermgr.errors import AskError, MovedError
from clustermgr.events import Event, EventBus, Redirect
from clustermgr.slots import SLOT_COUNT


def _node(port: int) -> Any:
    return SimpleNamespace(address=("10.0.0.1", port), counters=SimpleNamespace(redirects=0))


def _redirects(
    remap: Any = None, bus: EventBus | None = None
) -> tuple[Redirects, list[Any], dict[Any, Any], list[str]]:
    source, known = _node(7000), _node(7001)
    routes: list[Any] = [source] * SLOT_COUNT
    pools = {known.address: known}
    triggers: list[str] = []

    def node_pool(address: tuple[str, int]) -> Any:
        return pools.setdefault(address, _node(address[1]))

    redirects = Redirects(remap=remap, routes=lambda: routes, node_pool=node_pool,
                          pools=lambda: pools, events=bus or EventBus(),
                          trigger=triggers.append)
    return redirects, routes, pools, triggers


def test_moved_fixes_the_route_at_once_and_asks_for_a_reload() -> None:
    redirects, routes, pools, triggers = _redirects()
    source = routes[3999]
    target = redirects.follow("get", MovedError("MOVED 3999 10.0.0.1:7002"), ask=False)
    assert target is pools[("10.0.0.1", 7002)] and routes[3999] is target
    assert routes[4000] is source and source.counters.redirects == 1
    assert triggers == ["moved"]


def test_ask_leaves_the_route_and_the_map_alone() -> None:
    redirects, routes, pools, triggers = _redirects()
    source = routes[3999]
    target = redirects.follow("get", AskError("ASK 3999 10.0.0.1:7001"), ask=True)
    assert target is pools[("10.0.0.1", 7001)] and routes[3999] is source
    assert triggers == [] and source.counters.redirects == 1


def test_announced_addresses_are_remapped_and_announced_as_events() -> None:
    def remap(host: str, port: int) -> tuple[str, int]:
        return ("10.0.0.1", port - 1000)

    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    redirects, _routes, pools, _triggers = _redirects(remap, bus)
    target = redirects.follow("set", MovedError("MOVED 5 node.internal:8001"), ask=False)
    assert target is pools[("10.0.0.1", 7001)]
    assert [(e.redirect, e.slot, e.from_node, e.to_node, e.command)
            for e in seen if isinstance(e, Redirect)] == [
        ("MOVED", 5, ("10.0.0.1", 7000), ("10.0.0.1", 7001), "set")]
    assert len(seen) == 1
    assert redirects.known(("node.internal", 8001)) is target
    assert redirects.known(("node.internal", 9999)) is None
