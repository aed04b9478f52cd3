"""Redirects whose host parses as text but can never be looked up (IDNA).

A 64-character label, the replacement characters invalid UTF-8 decodes to,
or brackets twice: the redirect is malformed (a typed error failing only its
command, at once), never a bare UnicodeError or a future left unresolved.
"""

from __future__ import annotations

import asyncio

import pytest
from fake_server import FakeServer

from clustermgr import errors
from clustermgr.cluster import create_cluster_pool, key_slot
from clustermgr.connection import create_connection

_HOSTS = {
    "label-too-long": b"a" * 64 + b".example",
    "invalid-utf8": b"\xff\xfe",
    "brackets-twice": b"[[::1]]",
}


def _cluster_of_one(server: FakeServer) -> None:
    host, port = server.address
    server.replies[(b"CLUSTER", b"INFO")] = b"$23\r\ncluster_current_epoch:1\r\n"
    server.replies[(b"CLUSTER", b"SHARDS")] = b"-ERR unknown subcommand\r\n"
    server.replies[(b"CLUSTER", b"SLOTS")] = (
        b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$%d\r\n%s\r\n:%d\r\n$2\r\nid\r\n"
        % (len(host), host.encode(), port)
    )
    server.replies[(b"COMMAND",)] = b"-ERR unknown command\r\n"


@pytest.mark.parametrize("kind", ["MOVED", "ASK"])
@pytest.mark.parametrize("name", list(_HOSTS))
async def test_redirect_to_unencodable_host_fails_typed_and_bounded(name: str, kind: str) -> None:
    reply = b"-%s %d %s:7000\r\n" % (kind.encode(), key_slot(b"k"), _HOSTS[name])
    async with FakeServer() as server:
        _cluster_of_one(server)
        server.replies[(b"GET",)] = reply
        pool = await create_cluster_pool([server.address], retry_timeout=3)
        try:
            with pytest.raises(errors.MalformedRedirectError):
                await asyncio.wait_for(pool.execute(b"GET", b"k"), 10)
            replies = await asyncio.wait_for(
                pool.execute_batch([("GET", "k"), ("SET", "k2", "v")]), 10
            )
            assert isinstance(replies[0], errors.MalformedRedirectError), replies
            assert replies[1] == b"OK"
        finally:
            pool.close()
            await pool.wait_closed()


@pytest.mark.parametrize("host", ["a" * 64 + ".example", "\ufffd\ufffd"])
async def test_connecting_to_an_unencodable_host_is_a_connect_error(host: str) -> None:
    with pytest.raises(errors.ConnectError):
        await asyncio.wait_for(create_connection((host, 7000)), 10)


@pytest.mark.parametrize(
    ("message", "parsed"),
    [
        ("MOVED 1 " + "a" * 64 + ".example:7000", None),
        ("MOVED 1 \ufffd\ufffd:7000", None),
        ("MOVED 1 [[::1]]:7000", None),
        ("MOVED 1 a:b:7000", None),
        ("MOVED 1 [::1]:7000", (1, "::1", 7000)),
        ("ASK 2 ::1:7000", (2, "::1", 7000)),
        ("MOVED 1 :7000", (1, "", 7000)),
        ("MOVED 3 redis-1.local:7000", (3, "redis-1.local", 7000)),
        ("MOVED 4 10.0.0.1:6379", (4, "10.0.0.1", 6379)),
    ],
)
def test_parse_redirect_checks_the_host(message: str, parsed: object) -> None:
    assert errors.parse_redirect(message) == parsed


async def test_close_before_the_retry_task_starts_still_resolves_the_command() -> None:
    """The retry task is cancelled before its first step: the caller's future gets
    PoolClosedError instead of staying unresolved."""
    async with FakeServer() as server:
        host, port = server.address
        _cluster_of_one(server)
        server.replies[(b"CLUSTER", b"SLOTS")] = (  # slot 0 only: b"k" has no route
            b"*1\r\n*3\r\n:0\r\n:0\r\n*3\r\n$%d\r\n%s\r\n:%d\r\n$2\r\nid\r\n"
            % (len(host), host.encode(), port)
        )
        pool = await create_cluster_pool([server.address], retry_timeout=3)
        try:
            pending = pool.execute(b"GET", b"k")
            pool.close()
            with pytest.raises(errors.PoolClosedError):
                await asyncio.wait_for(pending, 5)
        finally:
            pool.close()
            await pool.wait_closed()
