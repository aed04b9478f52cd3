"""ClusterState: the cluster state as last seen, and the wait of CLUSTERDOWN-held commands."""

from __future__ import annotations

import asyncio

from clustermgr.cluster.state import ClusterState


async def test_a_clusterdown_wait_ends_at_the_first_answer_saying_ok() -> None:
    state = ClusterState()
    assert state.ok and state.turned_ok().done()  # nothing seen yet: ok, no wait
    state.seen(False)  # a CLUSTERDOWN reply, or a probe saying fail
    waiter = state.turned_ok()
    assert not state.ok and not waiter.done()
    assert state.turned_ok() is waiter  # one future for every held command
    state.seen(False)
    await asyncio.sleep(0)
    assert not waiter.done()
    state.seen(True)
    assert state.ok and waiter.done() and not waiter.cancelled()
    state.seen(False)
    assert not state.turned_ok().done()  # a new wait for the next change


async def test_close_ends_the_wait() -> None:
    state = ClusterState()
    state.seen(False)
    waiter = state.turned_ok()
    state.close()
    assert waiter.done()
