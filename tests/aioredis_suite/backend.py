"""clustermgr-backed ``create_connection``/``create_pool``/``create_redis``/``create_redis_pool``.

Installed into the ``aioredis`` module by the adapter plugin before aioredis'
conftest and test modules are imported, so no test body changes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aioredis
import aioredis.commands
import aioredis.errors

import clustermgr
import clustermgr.errors

#: aioredis.errors names a test may import, beyond ``__all__``.
_EXTRA_ERROR_NAMES = ("BusyGroupError", "MasterReplyError", "SlaveReplyError")


async def create_connection(address: Any, *, loop: Any = None, **kwargs: Any) -> Any:
    """aioredis.create_connection over clustermgr.create_connection."""
    return await clustermgr.create_connection(address, **kwargs)


async def create_pool(address: Any, *, loop: Any = None, **kwargs: Any) -> Any:
    """aioredis.create_pool over clustermgr.create_pool."""
    return await clustermgr.create_pool(address, **kwargs)


async def create_redis(
    address: Any, *, commands_factory: Any = aioredis.Redis, **kwargs: Any
) -> Any:
    """aioredis.create_redis: ``commands_factory`` over a clustermgr connection."""
    return commands_factory(await create_connection(address, **kwargs))


async def create_redis_pool(
    address: Any, *, commands_factory: Any = aioredis.Redis, timeout: Any = None,
    **kwargs: Any,
) -> Any:
    """aioredis.create_redis_pool: ``commands_factory`` over a clustermgr pool."""
    if timeout is not None:
        kwargs["create_connection_timeout"] = timeout
    return commands_factory(await aioredis.create_pool(address, **kwargs))


async def _one_shard(address: Any) -> None:
    """Give the one node of a fresh cluster-enabled server every slot; wait until it serves."""
    conn = await clustermgr.create_connection(address)
    try:
        info = await conn.execute("CLUSTER", "INFO", encoding="utf-8")
        if "cluster_slots_assigned:0" in info:
            await conn.execute("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        for _ in range(100):
            if "cluster_state:ok" in await conn.execute("CLUSTER", "INFO", encoding="utf-8"):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"one-shard cluster at {address} did not become ok")
    finally:
        conn.close()
        await conn.wait_closed()


#: create_pool keywords a cluster pool takes under another name.
_CLUSTER_NAMES = {"create_connection_timeout": "connect_timeout"}


async def create_cluster_pool(address: Any, *, loop: Any = None, **kwargs: Any) -> Any:
    """aioredis.create_pool over a one-shard clustermgr cluster pool (``db`` must be 0)."""
    await _one_shard(address)
    db = kwargs.pop("db", None)
    if db:
        raise ValueError(f"a cluster has only db 0, not {db!r}")
    kwargs = {_CLUSTER_NAMES.get(k, k): v for k, v in kwargs.items()}
    return await clustermgr.create_cluster_pool([address], **kwargs)


def install_backend(*, strict: bool, cluster: bool = False) -> None:
    """Swap aioredis' factories (pools over a one-shard cluster if ``cluster``);
    unless ``strict``, its error names too."""
    clustermgr.register_with_aioredis()
    factories = {
        "create_connection": create_connection,
        "create_pool": create_cluster_pool if cluster else create_pool,
        "create_redis": create_redis,
        "create_redis_pool": create_redis_pool,
    }
    for name, factory in factories.items():
        setattr(aioredis, name, factory)
        if hasattr(aioredis.commands, name):
            setattr(aioredis.commands, name, factory)
    if not strict:
        _bind_error_names()


def _bind_error_names() -> None:
    """Bind every aioredis module's error names to clustermgr's classes.

    Tests then catch clustermgr's classes, and aioredis' command layer
    (``MultiExec`` raising ``MultiExecError``) raises them too.
    """
    theirs_to_ours: dict[type, type] = {}
    for name in (*aioredis.errors.__all__, *_EXTRA_ERROR_NAMES):
        ours = getattr(clustermgr.errors, name, None)
        if ours is not None:
            theirs_to_ours[getattr(aioredis.errors, name)] = ours
    for module_name, module in list(sys.modules.items()):
        if module_name != "aioredis" and not module_name.startswith("aioredis."):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, type) and value in theirs_to_ours:
                setattr(module, attr, theirs_to_ours[value])
            elif isinstance(value, type) and value.__module__ == module_name:
                # Class attributes too: ``MultiExec.error_class = MultiExecError``.
                for name, member in list(vars(value).items()):
                    if isinstance(member, type) and member in theirs_to_ours:
                        setattr(value, name, theirs_to_ours[member])
