"""Whether the kernel already knows that a connection's TCP peer ended it.

A server killed while a connection is idle leaves its FIN (or RST) in our
kernel before the event loop has read it. A command written then goes out and
fails as "may have executed", although the server was gone before it was sent.
The connection asks the kernel first, before the first write to an idle
connection, and holds the command back when the peer has ended the
connection: a RESP server never reads a command after it closed (and asyncio
ends the connection on EOF too), so holding it back loses nothing, and the
command provably did not run.

Only Linux reports the state (``TCP_INFO``, one ``getsockopt`` of about a
microsecond); elsewhere, and on unix sockets, there is no probe and writes go
out as before (a write the kernel refuses is caught by the connection itself).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

__all__ = ["peer_ended", "state_probe"]

_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None
#: ``tcpi_state`` (the first byte of ``struct tcp_info``) once the peer sent RST
#: (TCP_CLOSE, 7) or FIN (TCP_CLOSE_WAIT, 8); Linux's include/net/tcp_states.h.
_ENDED = frozenset({b"\x07", b"\x08"})

Probe = Callable[[], bytes]


def state_probe(sock: Any) -> Probe | None:
    """A call reading ``sock``'s TCP state, or None where it cannot be read
    (not Linux, not a TCP socket)."""
    if _TCP_INFO is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    probe: Probe = partial(sock.getsockopt, socket.IPPROTO_TCP, _TCP_INFO, 1)
    return probe


def peer_ended(probe: Probe) -> bool:
    """True if the kernel holds the peer's FIN or RST (False when it cannot tell)."""
    try:
        return probe() in _ENDED
    except OSError:
        return False
