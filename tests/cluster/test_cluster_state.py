"""ClusterState: which nodes refused with CLUSTERDOWN, and the wait of their held commands."""

from __future__ import annotations

import asyncio

from clustermgr.cluster.state import ClusterState

A, B = ("127.0.0.1", 7000), ("127.0.0.1", 7001)


async def test_a_clusterdown_wait_ends_when_the_refusing_node_says_ok() -> None:
    state = ClusterState()
    assert state.turned_ok(A).done() and state.refusing == []  # nothing refused: no wait
    state.refused(A)  # a CLUSTERDOWN reply from A
    waiter = state.turned_ok(A)
    assert not waiter.done() and state.refusing == [A]
    assert state.turned_ok(A) is waiter  # one future for every command held on A
    state.refused(A)
    state.seen(A, ok=False)  # a probe of A: still fail
    state.seen(B, ok=True)  # another node (the promoted replica) ok first: not A's answer
    await asyncio.sleep(0)
    assert not waiter.done()
    state.seen(A, ok=True)
    assert waiter.done() and not waiter.cancelled() and state.refusing == []
    state.refused(A)
    assert not state.turned_ok(A).done()  # a new wait for A's next answer


async def test_close_ends_every_wait() -> None:
    state = ClusterState()
    state.refused(A)
    state.refused(B)
    waiters = [state.turned_ok(A), state.turned_ok(B)]
    state.close()
    assert all(w.done() for w in waiters) and state.refusing == []
