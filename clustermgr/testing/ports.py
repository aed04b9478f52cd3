"""Free TCP ports for local servers, reserved so this process never hands one out twice."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

__all__ = ["BUS_PORT_OFFSET", "MAX_PORT", "find_free_port", "port_is_free"]

MAX_PORT = 55535
"""Highest port handed out, so that ``port + 10000`` (cluster bus) stays valid."""

BUS_PORT_OFFSET = 10000

_HOST = "127.0.0.1"

_rng = random.SystemRandom()
_reserved: set[int] = set()
_reserve_lock = threading.Lock()


def port_is_free(port: int, host: str = _HOST) -> bool:
    """Return True if a TCP listener could bind ``host:port`` right now."""
    if not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _candidate_ok(port: int, host: str, bus: bool) -> bool:
    if port in _reserved or port > MAX_PORT or not port_is_free(port, host):
        return False
    if bus:
        bus_port = port + BUS_PORT_OFFSET
        return bus_port not in _reserved and port_is_free(bus_port, host)
    return True


def find_free_port(host: str = _HOST, *, bus: bool = False, attempts: int = 500) -> int:
    """Return a currently free TCP port on ``host`` and reserve it in this process.

    Ports are drawn at random below the kernel's ephemeral range (so outgoing
    connections cannot grab them between runs of a server); if none is found
    there, the kernel is asked for one by binding port 0.  With ``bus=True`` the
    cluster bus port ``port + 10000`` must be free too.  Every port returned is
    at most :data:`MAX_PORT` and never returned twice by this process.  The port
    may still be taken by another process before the server binds it; the
    launcher retries on ``EADDRINUSE``.
    """
    low = 10000
    high = _ephemeral_low() - 1 - (BUS_PORT_OFFSET if bus else 0)
    high = min(high, MAX_PORT)
    with _reserve_lock:
        if high > low:
            for _ in range(attempts):
                port = _rng.randint(low, high)
                if _candidate_ok(port, host, bus):
                    _reserved.add(port)
                    if bus:
                        _reserved.add(port + BUS_PORT_OFFSET)
                    return port
        for _ in range(attempts):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if _candidate_ok(port, host, bus):
                _reserved.add(port)
                if bus:
                    _reserved.add(port + BUS_PORT_OFFSET)
                return port
    raise OSError(f"no free port found on {host} after {attempts} attempts")
