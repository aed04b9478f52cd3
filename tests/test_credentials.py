"""Rotating credentials: a provider asked at every connect, live connections re-authenticated.

The rotation test moves a loaded pool from ACL user ``app-v1`` to ``app-v2`` and
then deletes ``app-v1`` -- which makes the server close every connection still
authenticated as it. Zero errors means every connection, busy ones included,
was re-authenticated before.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clustermgr import create_pool, create_sentinel_pool
from clustermgr.cluster import create_cluster_pool
from clustermgr.credentials import CredentialProviderError
from clustermgr.errors import RedisError
from clustermgr.testing import LocalCluster, LocalSentinelGroup, LocalStandalone

pytestmark = pytest.mark.timeout(120)


class Rotating:
    """A credential provider whose answer the test changes; counts its calls."""

    def __init__(self, user: str, asynchronous: bool = False) -> None:
        self.current = (user, f"{user}-pw")
        self.calls = 0
        self.asynchronous = asynchronous

    def __call__(self) -> Any:
        self.calls += 1
        if not self.asynchronous:
            return self.current

        async def later() -> tuple[str, str]:
            await asyncio.sleep(0)
            return self.current

        return later()


def _add_user(node: Any, user: str) -> None:
    node.command("ACL", "SETUSER", user, "on", f">{user}-pw", "~*", "&*", "+@all")


def _users_of_clients(node: Any) -> Counter[str]:
    lines = str(node.command("CLIENT", "LIST")).splitlines()
    users = Counter(f.split("=", 1)[1] for line in lines for f in line.split()
                    if f.startswith("user="))
    return users


@pytest.fixture
def standalone() -> Iterator[LocalStandalone]:
    with LocalStandalone() as server:
        for user in ("app-v1", "app-v2"):
            _add_user(server.server, user)
        yield server


class Load:
    """``tasks`` writers through ``pool`` until stopped; counts errors by type."""

    def __init__(self, pool: Any, tasks: int = 20) -> None:
        self.pool = pool
        self.errors: Counter[str] = Counter()
        self.done = 0
        self._stop = asyncio.Event()
        counter = itertools.count()
        self._tasks = [asyncio.ensure_future(self._run(counter)) for _ in range(tasks)]

    async def _run(self, counter: itertools.count[int]) -> None:
        while not self._stop.is_set():
            key = f"rot:{next(counter)}"
            try:
                assert await self.pool.execute("SET", key, "v") == b"OK"
                self.done += 1
            except RedisError as exc:
                self.errors[f"{type(exc).__name__}: {exc}"] += 1
            await asyncio.sleep(0.001)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_the_provider_is_asked_at_every_connect(
    standalone: LocalStandalone, asynchronous: bool
) -> None:
    provider = Rotating("app-v1", asynchronous)
    pool = await create_pool(
        standalone.address, credential_provider=provider, minsize=3, maxsize=4
    )
    try:
        assert provider.calls == 3
        assert await pool.execute("ACL", "WHOAMI") == b"app-v1"
        provider.current = ("app-v2", "app-v2-pw")
        conns = [await pool.acquire() for _ in range(4)]  # the fourth is opened now
        assert provider.calls == 4
        assert [await c.execute("ACL", "WHOAMI") for c in conns].count(b"app-v2") == 1
        for conn in conns:  # released ones move to the provider's newest answer
            pool.release(conn)
        for _ in range(100):
            if _users_of_clients(standalone.server)["app-v1"] == 0:
                break
            await asyncio.sleep(0.02)
        users = _users_of_clients(standalone.server)
        assert (users["app-v1"], users["app-v2"]) == (0, 4), users
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_failing_provider_fails_the_connect_typed(standalone: LocalStandalone) -> None:
    def broken() -> tuple[str, str]:
        raise RuntimeError("token service down")

    with pytest.raises(CredentialProviderError, match="token service down"):
        await create_pool(standalone.address, credential_provider=broken)
    with pytest.raises(CredentialProviderError, match="not a \\(username, password\\)"):
        await create_pool(standalone.address, credential_provider=lambda: "secret")


async def test_reauthenticate_with_a_hanging_provider_fails_within_the_connect_timeout(
    standalone: LocalStandalone,
) -> None:
    hung: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    answers = [("app-v1", "app-v1-pw"), hung]  # then the provider hangs
    pool = await create_pool(
        standalone.address, credential_provider=lambda: answers.pop(0),
        create_connection_timeout=0.5,
    )
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(CredentialProviderError, match=r"did not answer within 0\.5s"):
            await asyncio.wait_for(pool.reauthenticate(), 5)
        assert asyncio.get_running_loop().time() - started < 2
        assert await pool.execute("ACL", "WHOAMI") == b"app-v1"  # still as before
    finally:
        hung.cancel()
        pool.close()
        await pool.wait_closed()


async def test_an_empty_password_from_the_provider_is_refused(
    standalone: LocalStandalone,
) -> None:
    # An empty (expired) token must not connect unauthenticated as "default".
    with pytest.raises(CredentialProviderError, match="empty password"):
        await create_pool(standalone.address, credential_provider=lambda: ("app-v1", ""))
    provider = Rotating("app-v1")
    pool = await create_pool(standalone.address, credential_provider=provider)
    try:
        provider.current = ("app-v1", "")
        with pytest.raises(CredentialProviderError, match="empty password"):
            await pool.reauthenticate()
        assert await pool.execute("ACL", "WHOAMI") == b"app-v1"
    finally:
        pool.close()
        await pool.wait_closed()


async def test_rotating_a_standalone_pool_under_load_has_no_errors(
    standalone: LocalStandalone,
) -> None:
    server = standalone.server
    provider = Rotating("app-v1")
    pool = await create_pool(
        standalone.address, credential_provider=provider, minsize=4, maxsize=4
    )
    load = Load(pool)
    try:
        await asyncio.sleep(0.3)
        provider.current = ("app-v2", "app-v2-pw")
        await pool.reauthenticate()
        server.command("ACL", "DELUSER", "app-v1")  # closes app-v1's connections
        before = load.done
        await asyncio.sleep(0.3)
        await load.stop()
        assert load.done > before
        assert not load.errors, load.errors
        users = _users_of_clients(server)
        assert users["app-v1"] == 0 and users["app-v2"] >= 4, users
    finally:
        await load.stop()
        pool.close()
        await pool.wait_closed()


async def test_rotating_a_cluster_pool_under_load_has_no_errors(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = local_cluster_factory(masters=3, replicas_per_master=0)
    for node in cluster.nodes:
        for user in ("app-v1", "app-v2"):
            _add_user(node, user)
    provider = Rotating("app-v1")
    pool = await create_cluster_pool(
        cluster.startup_nodes, credential_provider=provider, minsize=2, maxsize=2
    )
    load = Load(pool)
    try:
        await asyncio.sleep(0.3)
        provider.current = ("app-v2", "app-v2-pw")
        await pool.reauthenticate()
        for node in cluster.nodes:
            node.command("ACL", "DELUSER", "app-v1")
        before = load.done
        await asyncio.sleep(0.3)
        await load.stop()
        assert load.done > before
        assert not load.errors, load.errors
        for node in cluster.nodes:
            assert _users_of_clients(node)["app-v1"] == 0
    finally:
        await load.stop()
        pool.close()
        await pool.wait_closed()


async def test_rotating_a_sentinel_pool_under_load_has_no_errors(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> None:
    group = local_sentinel_factory(replicas=0, sentinels=1, quorum=1)
    for user in ("app-v1", "app-v2"):
        _add_user(group.master, user)
    provider = Rotating("app-v1")
    pool = await create_sentinel_pool(
        group.sentinel_addresses, group.service, credential_provider=provider,
        minsize=3, maxsize=3,
    )
    load = Load(pool)
    try:
        await asyncio.sleep(0.3)
        provider.current = ("app-v2", "app-v2-pw")
        await pool.reauthenticate()
        group.master.command("ACL", "DELUSER", "app-v1")
        before = load.done
        await asyncio.sleep(0.3)
        await load.stop()
        assert load.done > before
        assert not load.errors, load.errors
        assert _users_of_clients(group.master)["app-v1"] == 0
    finally:
        await load.stop()
        pool.close()
        await pool.wait_closed()
