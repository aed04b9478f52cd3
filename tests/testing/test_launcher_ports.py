"""Free-port selection and config rendering."""

from __future__ import annotations

import socket

from clustermgr.testing.process import MAX_PORT, config_lines, find_free_port, port_is_free


def test_free_port_is_bindable_and_bounded() -> None:
    port = find_free_port()
    assert 0 < port <= MAX_PORT
    assert port_is_free(port)


def test_bus_port_is_free_too() -> None:
    for _ in range(20):
        port = find_free_port(bus=True)
        assert port + 10000 <= 65535
        assert port_is_free(port) and port_is_free(port + 10000)


def test_ports_are_never_handed_out_twice() -> None:
    ports = [find_free_port(bus=True) for _ in range(50)]
    ports += [find_free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)


def test_port_in_use_is_not_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_is_free(sock.getsockname()[1])
    assert not port_is_free(0)
    assert not port_is_free(70000)


def test_config_lines_quoting() -> None:
    assert config_lines(None) == []
    assert config_lines({"save": "", "maxmemory": 1024}) == ['save ""', "maxmemory 1024"]
    assert config_lines([("save", ["60", 1000]), "appendonly no"]) == [
        "save 60 1000",
        "appendonly no",
    ]
    assert config_lines([("requirepass", ['a b"c'])]) == ['requirepass "a b\\"c"']
    assert config_lines([("replicaof", "127.0.0.1 6380")]) == ["replicaof 127.0.0.1 6380"]
    assert config_lines({"user": ["u", "on", ">p w", "+@all"]}) == ['user u on ">p w" +@all']
