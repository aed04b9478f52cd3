"""RedisConnection against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from clustermgr import create_connection, errors
from clustermgr.connection import RedisConnection


async def test_set_get_and_encodings(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        assert await conn.execute(b"SET", "enc:key", "välue") == b"OK"
        assert await conn.execute(b"GET", "enc:key") == "välue".encode()
        assert await conn.execute(b"GET", "enc:key", encoding="utf-8") == "välue"
        assert conn.encoding is None
    finally:
        conn.close()
        await conn.wait_closed()
    conn = await create_connection(redis_standalone.address, encoding="utf-8")
    try:
        assert await conn.execute("GET", "enc:key") == "välue"
        assert await conn.execute("GET", "enc:key", encoding=None) == "välue".encode()
    finally:
        conn.close()
        await conn.wait_closed()


async def test_ten_thousand_in_flight_come_back_in_order(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        await conn.execute("DEL", "order:n")
        futures = [conn.execute("INCR", "order:n") for _ in range(10_000)]
        assert conn.in_flight == 10_000
        assert await asyncio.gather(*futures) == list(range(1, 10_001))
    finally:
        conn.close()
        await conn.wait_closed()


async def test_reply_errors_are_typed_and_connection_survives(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        await conn.execute("SET", "typed:str", "x")
        with pytest.raises(errors.WrongTypeError):
            await conn.execute("LPUSH", "typed:str", "y")
        with pytest.raises(errors.ReplyError, match="unknown command"):
            await conn.execute("NOSUCHCOMMAND")
        assert await conn.execute("PING") == b"PONG"
    finally:
        conn.close()
        await conn.wait_closed()


async def test_bad_argument_types_fail_before_sending(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        with pytest.raises(TypeError, match="NoneType"):
            conn.execute("SET", "k", None)
        assert conn.in_flight == 0
    finally:
        conn.close()
        await conn.wait_closed()


async def test_select_multi_exec_and_setname(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address, db=2, name="cm-test")
    try:
        assert conn.db == 2
        assert await conn.execute("CLIENT", "GETNAME") == b"cm-test"
        assert await conn.select(3)
        assert conn.db == 3
        assert await conn.execute("MULTI") == b"OK"
        assert conn.in_transaction
        assert await conn.execute("SET", "tx:a", 1) == b"QUEUED"
        assert await conn.execute("INCR", "tx:a") == b"QUEUED"
        assert await conn.execute("EXEC") == [b"OK", 2]
        assert not conn.in_transaction
    finally:
        conn.close()
        await conn.wait_closed()


async def test_url_options(redis_standalone: Any) -> None:
    host, port = redis_standalone.address
    conn = await create_connection(f"redis://{host}:{port}/4?encoding=utf-8&name=fromurl")
    try:
        assert conn.db == 4 and conn.encoding == "utf-8"
        assert await conn.execute("CLIENT", "GETNAME") == "fromurl"
    finally:
        conn.close()
        await conn.wait_closed()


async def test_killed_server_fails_pending_commands_promptly(
    local_standalone_factory: Any,
) -> None:
    server = local_standalone_factory()
    conn = await create_connection(server.address)
    try:
        blocked = conn.execute("BLPOP", "never", 0)
        await asyncio.sleep(0.05)  # written
        started = time.monotonic()
        server.kill()
        with pytest.raises(errors.ConnectionClosedError) as info:
            await asyncio.wait_for(blocked, 5)
        assert time.monotonic() - started < 2
        assert info.value.may_have_executed is True
        assert conn.closed
        with pytest.raises(errors.ConnectionClosedError) as closed:
            conn.execute("PING")
        assert closed.value.may_have_executed is False
    finally:
        conn.close()
        await conn.wait_closed()


async def test_close_fails_unsent_commands_as_not_executed(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    sent = conn.execute("BLPOP", "close:never", 0)  # idle connection: written at once
    buffered = conn.execute("PING")  # same tick: waits in the write buffer
    conn.close()
    with pytest.raises(errors.ConnectionForcedCloseError) as info:
        await sent
    assert info.value.may_have_executed is True
    with pytest.raises(errors.ConnectionForcedCloseError) as info:
        await buffered
    assert info.value.may_have_executed is False
    await conn.wait_closed()


async def test_auth_with_acl_user_and_wrong_password(local_standalone_factory: Any) -> None:
    server = local_standalone_factory(username="app", password="s3cret")
    conn = await create_connection(server.address, username="app", password="s3cret")
    try:
        assert await conn.execute("ACL", "WHOAMI") == b"app"
    finally:
        conn.close()
        await conn.wait_closed()
    host, port = server.address
    with pytest.raises(errors.AuthError) as info:
        await create_connection(f"redis://app:wrong@{host}:{port}")
    assert "wrong" not in str(info.value)
    with pytest.raises(errors.AuthError):
        conn = await create_connection(server.address)
        try:
            await conn.execute("GET", "x")
        finally:
            conn.close()
            await conn.wait_closed()


async def test_connect_errors_are_typed(local_standalone_factory: Any) -> None:
    server = local_standalone_factory(password="pw")
    address = server.address
    server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(errors.TimeoutError, match="timed out"):
            await create_connection(address, password="pw", timeout=0.3)
        assert time.monotonic() - started < 2
    finally:
        server.resume()
    server.kill()
    with pytest.raises(errors.ConnectError, match=f"127.0.0.1:{address[1]}"):
        await create_connection(address, timeout=2)


async def test_unix_socket(local_standalone_factory: Any, tmp_path: Any) -> None:
    path = tmp_path / "redis.sock"
    local_standalone_factory(config=[("unixsocket", str(path)), ("unixsocketperm", "700")])
    conn = await create_connection(f"unix://{path}?db=1")
    try:
        assert conn.address == str(path)
        assert await conn.execute("PING") == b"PONG"
    finally:
        conn.close()
        await conn.wait_closed()


async def test_custom_connection_class(redis_standalone: Any) -> None:
    class Counting(RedisConnection):
        sent = 0

        def execute(self, command: Any, *args: Any, **kwargs: Any) -> Any:
            Counting.sent += 1
            return super().execute(command, *args, **kwargs)

    conn = await create_connection(redis_standalone.address, connection_cls=Counting)
    try:
        await conn.execute("PING")
        assert isinstance(conn, Counting) and Counting.sent == 1
    finally:
        conn.close()
        await conn.wait_closed()
    with pytest.raises(TypeError, match="connection_cls"):
        await create_connection(redis_standalone.address, connection_cls=int)  # type: ignore[arg-type]


async def test_read_timeout_detects_a_paused_server(local_standalone_factory: Any) -> None:
    server = local_standalone_factory()
    conn = await create_connection(server.address, read_timeout=0.5)
    try:
        assert await conn.execute("PING") == b"PONG"
        server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(errors.ConnectionClosedError) as info:
                await asyncio.wait_for(conn.execute("GET", "k"), 5)
            assert 0.4 < time.monotonic() - started < 2
            assert info.value.may_have_executed is True
            assert "read_timeout" in str(info.value)
        finally:
            server.resume()
    finally:
        conn.close()
        await conn.wait_closed()


async def test_read_timeout_spares_blocking_commands(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address, read_timeout=0.3)
    try:
        assert await conn.execute("BLPOP", "rt:never", 1) is None  # waits 1 s > read_timeout
        assert await conn.execute("PING") == b"PONG"
    finally:
        conn.close()
        await conn.wait_closed()
    with pytest.raises(ValueError, match="read_timeout"):
        await create_connection(redis_standalone.address, read_timeout=0)


async def test_error_hook_can_take_over_the_future(local_standalone_factory: Any) -> None:
    server = local_standalone_factory()
    conn = await create_connection(server.address)
    seen: list[tuple[type, Any, tuple[Any, ...], bool]] = []

    def on_error(future: Any, error: BaseException, command: Any, args: Any, enc: Any) -> bool:
        seen.append((type(error), command, args, getattr(error, "may_have_executed", None)))
        if isinstance(error, errors.WrongTypeError):
            future.set_result("handled")  # e.g. retried elsewhere
            return True
        return False

    try:
        await conn.execute("SET", "hook:s", "x")
        assert await conn.execute("LPUSH", "hook:s", "y", on_error=on_error) == "handled"
        with pytest.raises(errors.ReplyError, match="unknown command"):
            await conn.execute("NOSUCH", on_error=on_error)
        pending = conn.execute("BLPOP", "hook:never", 0, on_error=on_error)
        await asyncio.sleep(0.05)
        server.kill()
        with pytest.raises(errors.ConnectionClosedError):
            await pending
        assert seen == [
            (errors.WrongTypeError, "LPUSH", ("hook:s", "y"), False),
            (errors.ReplyError, "NOSUCH", (), False),
            (errors.ConnectionClosedError, "BLPOP", ("hook:never", 0), True),
        ]
    finally:
        conn.close()
        await conn.wait_closed()


async def test_bytearray_and_memoryview_arguments(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        assert await conn.execute("SET", bytearray(b"ba:key"), bytearray(b"v1")) == b"OK"
        assert await conn.execute("GET", memoryview(b"ba:key")) == b"v1"
        assert await conn.execute_batch([("SET", "ba:key", bytearray(b"v2"))]) == [b"OK"]
        assert await conn.execute("GET", "ba:key") == b"v2"
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.mark.parametrize("bad", [0, -1, -0.5])
async def test_timeout_must_be_positive(redis_standalone: Any, bad: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        await create_connection(redis_standalone.address, timeout=bad)
    host, port = redis_standalone.address
    with pytest.raises(ValueError, match="timeout"):
        await create_connection(f"redis://{host}:{port}?timeout={bad}")


async def test_client_reply_off_is_refused(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        for mode in ("OFF", "skip"):
            with pytest.raises(TypeError, match="CLIENT REPLY"):
                conn.execute("CLIENT", "REPLY", mode)
        assert await conn.execute("CLIENT", "REPLY", "ON") == b"OK"
        assert await conn.execute("PING") == b"PONG"
    finally:
        conn.close()
        await conn.wait_closed()


async def test_batch_refuses_commands_whose_state_it_cannot_track(
    redis_standalone: Any,
) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        for command in (("WATCH", "k"), ("UNWATCH",), ("AUTH", "pw"), ("READWRITE",)):
            with pytest.raises(TypeError, match="changes connection state"):
                conn.execute_batch([("PING",), command])
        with pytest.raises(TypeError, match="CLIENT REPLY"):
            conn.execute_batch([("CLIENT", "REPLY", "OFF")])
        assert await conn.execute_batch([("CLIENT", "SETNAME", "batch")]) == [b"OK"]
        assert conn.in_flight == 0
    finally:
        conn.close()
        await conn.wait_closed()


async def test_select_checks_db_and_closed_connection_at_the_call(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        with pytest.raises(TypeError, match="db must be an int"):
            conn.select(None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="0 or more"):
            conn.select(-1)
        with pytest.raises(ValueError, match="0 or more"):
            await create_connection(redis_standalone.address, db=-1)
        assert await conn.select(1) is True and conn.db == 1
    finally:
        conn.close()
        await conn.wait_closed()
    with pytest.raises(errors.ConnectionClosedError):
        conn.select(1)  # no await: refused at the call, as aioredis 1.x does


async def test_a_none_argument_is_named_in_the_error(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        with pytest.raises(TypeError, match="argument 2 of 'SET' has type NoneType; args must"):
            conn.execute("SET", "k", None)
    finally:
        conn.close()
        await conn.wait_closed()


async def test_a_subscribed_connection_refuses_other_commands_client_side(
    redis_standalone: Any,
) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        await conn.execute_pubsub("SUBSCRIBE", "refuse:c")
        with pytest.raises(errors.RedisError, match="Connection in SUBSCRIBE mode"):
            conn.execute("GET", "k")
        with pytest.raises(errors.RedisError, match="Connection in SUBSCRIBE mode"):
            conn.execute("select", 1)
        assert conn.in_flight == 0  # nothing was sent
        assert await conn.execute("PING") == b"PONG"
        await conn.execute_pubsub("PSUBSCRIBE", "refuse:*")
        await conn.execute_pubsub("UNSUBSCRIBE", "refuse:c")
        with pytest.raises(errors.RedisError, match="SUBSCRIBE mode"):
            conn.execute("GET", "k")  # still subscribed to a pattern
        await conn.execute_pubsub("PUNSUBSCRIBE")
        assert await conn.execute("GET", "refuse:none") is None
    finally:
        conn.close()
        await conn.wait_closed()
