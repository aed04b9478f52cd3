"""Bad input gives a distinct, clear error quickly (no hang)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from clustermgr import create_sentinel_pool
from clustermgr.errors import AuthError, MasterNotFoundError
from clustermgr.sentinel import (
    SentinelAuthError,
    SentinelsUnreachableError,
    UnknownServiceError,
)
from clustermgr.testing import LocalSentinelGroup, find_free_port

pytestmark = pytest.mark.timeout(60)

QUICK = 2.0  # seconds


@pytest.fixture
async def secured(
    local_sentinel_factory: Callable[..., LocalSentinelGroup],
) -> AsyncIterator[LocalSentinelGroup]:
    yield await asyncio.to_thread(
        local_sentinel_factory, password="data-secret", sentinel_password="sentinel-secret"
    )


async def _fails(expected: type[BaseException], *args: object, **kwargs: object) -> str:
    started = time.monotonic()
    with pytest.raises(expected) as info:
        await create_sentinel_pool(*args, **kwargs)  # type: ignore[arg-type]
    assert time.monotonic() - started < QUICK
    return str(info.value)


async def test_unknown_service(redis_sentinel: LocalSentinelGroup) -> None:
    message = await _fails(UnknownServiceError, redis_sentinel.sentinel_addresses, "nosuch")
    assert "'nosuch'" in message
    assert issubclass(UnknownServiceError, MasterNotFoundError)


async def test_unreachable_sentinels() -> None:
    addresses = [("127.0.0.1", find_free_port()) for _ in range(3)]
    message = await _fails(SentinelsUnreachableError, addresses, "mymaster")
    assert str(addresses[0][1]) in message


async def test_passwords(secured: LocalSentinelGroup) -> None:
    addresses, service = secured.sentinel_addresses, secured.service
    # No sentinel password / a wrong one.
    await _fails(SentinelAuthError, addresses, service, password="data-secret")
    await _fails(SentinelAuthError, addresses, service, password="data-secret",
                 sentinel_password="wrong")
    # Right sentinel password, wrong data node password: not a sentinel error.
    with pytest.raises(AuthError) as info:
        await create_sentinel_pool(addresses, service, password="wrong",
                                   sentinel_password="sentinel-secret")
    assert not isinstance(info.value, SentinelAuthError)
    assert "refused the credentials" in str(info.value)
    pool = await create_sentinel_pool(addresses, service, password="data-secret",
                                      sentinel_password="sentinel-secret")
    try:
        assert await pool.execute("SET", "k", "v") == b"OK"
    finally:
        pool.close()
        await pool.wait_closed()
