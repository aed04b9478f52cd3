"""The tiny RESP2 admin client, against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clustermgr.testing import LocalServer, RespConnection, RespError, execute
from clustermgr.testing.resp import (
    RespProtocolError,
    as_int,
    as_list,
    as_str,
    encode_command,
    parse_info,
)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


def test_encode_command() -> None:
    assert encode_command(["SET", b"k", 12]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    with pytest.raises(TypeError):
        encode_command([True])


def test_basic_types(server: LocalServer) -> None:
    with RespConnection(*server.address) as conn:
        assert conn.command("PING") == "PONG"
        assert conn.command("SET", "resp:k", "v") == "OK"
        assert conn.command("GET", "resp:k") == "v"
        assert conn.command("GET", "resp:missing") is None
        assert conn.command("INCRBY", "resp:n", 5) == 5
        assert conn.command("DEL", "resp:list") in (0, 1)
        assert conn.command("RPUSH", "resp:list", "a", "b", "c") == 3
        assert conn.command("LRANGE", "resp:list", 0, -1) == ["a", "b", "c"]
        assert conn.command("BLPOP", "resp:empty", "0.01") is None  # null array


def test_nested_arrays_and_nested_errors(server: LocalServer) -> None:
    with RespConnection(*server.address) as conn:
        conn.command("SET", "resp:text", "abc")
        assert conn.command("MULTI") == "OK"
        assert conn.command("SET", "resp:a", "1") == "QUEUED"
        assert conn.command("INCR", "resp:text") == "QUEUED"
        assert conn.command("LRANGE", "resp:list", 0, 0) == "QUEUED"
        reply = as_list(conn.command("EXEC"))
        assert reply[0] == "OK"
        assert isinstance(reply[1], RespError)
        assert reply[2] == ["a"]
        info = as_list(conn.command("COMMAND", "INFO", "GET"))
        assert isinstance(info[0], list)
        assert as_str(info[0][0]) == "get"


def test_error_reply_raises_and_connection_stays_usable(server: LocalServer) -> None:
    with RespConnection(*server.address) as conn:
        with pytest.raises(RespError) as err:
            conn.command("NOSUCHCOMMAND", "x")
        assert err.value.kind == "ERR"
        assert conn.command("PING") == "PONG"


def test_binary_values_round_trip(server: LocalServer) -> None:
    raw = bytes(range(256))
    with RespConnection(*server.address, decode=False) as conn:
        conn.command("SET", b"resp:bin", raw)
        assert conn.command("GET", b"resp:bin") == raw
    with RespConnection(*server.address) as conn:
        text = as_str(conn.command("GET", "resp:bin"))
        conn.command("SET", "resp:bin2", text)  # surrogateescape round trip
        assert conn.command("STRLEN", "resp:bin2") == 256
    assert execute(server.address, "GET", "resp:bin2") == text


def test_helpers(server: LocalServer) -> None:
    info = parse_info(as_str(execute(server.address, "INFO", "server")))
    assert as_int(info["tcp_port"]) == server.port
    assert server.info("server")["process_id"] == str(server.pid)
    assert server.role() == "master"
    with pytest.raises(TypeError):
        as_int(None)
    with pytest.raises(TypeError):
        as_list("x")


def test_closed_connection() -> None:
    srv = LocalServer().start()
    try:
        conn = RespConnection(*srv.address)
        srv.kill()
        with conn, pytest.raises((RespProtocolError, OSError)):
            conn.command("PING")
    finally:
        srv.cleanup()
