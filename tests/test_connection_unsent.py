"""A command the connection never sent fails with ``may_have_executed=False``.

Against a real redis-server killed by PID (its sockets are closed once the kill
returns, the process is reaped). The connection knows a command was not sent
when the transport is already closing or when the write itself fails; a
command written while the server was alive, or written to a socket whose end
the event loop has not read yet, stays "may have executed"
(``test_connection.py::test_killed_server_fails_pending_commands_promptly``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from clustermgr import create_connection, errors
from clustermgr.connection import RedisConnection


async def _refused(future: asyncio.Future[Any]) -> errors.ConnectionClosedError:
    with pytest.raises(errors.ConnectionClosedError) as info:
        await asyncio.wait_for(future, 5)
    return info.value


async def test_command_on_a_closing_transport_is_not_sent(local_standalone_factory: Any) -> None:
    """A command issued on an idle connection after its transport saw the end of
    the stream, before its ``connection_lost`` ran: asyncio drops the bytes.

    Every connection sees the kill in the same loop turn (the process is reaped
    before the loop reads); the ``connection_lost`` of the one with a command in
    flight issues an INCR on each idle connection whose own is still due. The
    holder is opened between idle ones, so some come after it whatever the order.
    """
    server = local_standalone_factory()
    conns = [await create_connection(server.address) for _ in range(5)]
    holder, idle = conns[2], conns[:2] + conns[3:]
    issued: list[asyncio.Future[Any]] = []

    def issue_on_idle(*_: Any) -> bool:
        issued.extend(conn.execute("INCR", "closing:n") for conn in idle if not conn.closed)
        return False

    try:
        blocked = holder.execute("BLPOP", "closing:never", 0, on_error=issue_on_idle)
        await asyncio.sleep(0.05)  # written
        server.kill()
        with pytest.raises(errors.ConnectionClosedError):
            await asyncio.wait_for(blocked, 5)
        assert issued
        for future in issued:
            error = await _refused(future)
            assert error.may_have_executed is False, error
    finally:
        for conn in conns:
            conn.close()
            await conn.wait_closed()


async def test_write_the_kernel_refuses_is_not_sent(
    local_standalone_factory: Any, tmp_path: Path
) -> None:
    """On a unix socket the write to a dead peer fails (EPIPE): nothing was sent."""
    path = tmp_path / "redis.sock"
    server = local_standalone_factory(config=[("unixsocket", str(path))])
    conn = await create_connection(str(path))
    try:
        assert isinstance(conn, RedisConnection)
        assert await conn.execute("PING") == b"PONG"
        server.kill()
        error = await _refused(conn.execute("INCR", "epipe:n"))
        assert error.may_have_executed is False, error
    finally:
        conn.close()
        await conn.wait_closed()
