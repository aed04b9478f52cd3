"""Key to Redis Cluster hash slot mapping.

The slot of a key is ``CRC16-XMODEM(hashed part) mod 16384``. The hashed part
is the whole key unless it contains a *hash tag*: the bytes between the first
``{`` and the first ``}`` after it, provided that span is non-empty.

Keys are hashed as the bytes the connection puts on the wire (the same rules
as aioredis 1.x ``encode_command`` and ``hiredis.pack_command``):

* ``bytes``, ``bytearray``, ``memoryview``: used as is;
* ``str``: UTF-8;
* ``int``: decimal digits (``b"%d" % key``);
* ``float``: ``repr(key)`` (``1.5`` -> ``b"1.5"``, ``1e100`` -> ``b"1e+100"``).

``bool`` is rejected like the encoders do (``True`` is not ``b"True"`` nor ``b"1"``
on the wire, it is an error).
"""

from __future__ import annotations

from binascii import crc_hqx

__all__ = ["SLOT_COUNT", "KeyT", "key_slot"]

SLOT_COUNT = 16384
"""Number of hash slots in a Redis Cluster."""

KeyT = bytes | bytearray | memoryview | str | int | float
"""Types accepted as a key (and as a command argument)."""

_MASK = SLOT_COUNT - 1  # 16384 is a power of two: ``& _MASK`` == ``% SLOT_COUNT``


def key_slot(key: KeyT) -> int:
    """Return the hash slot (0..16383) of ``key``, honouring ``{hash tags}``."""
    # Exact type checks first: by far the most common case is bytes, then str.
    data: bytes | bytearray
    if type(key) is bytes:
        data = key
    elif type(key) is str:
        data = key.encode()
    elif type(key) is int:
        data = b"%d" % key
    else:
        data = _encode_slow(key)
    # ``int in bytes`` is a cheap membership test (no method call, constant
    # operand); most keys have no "{" (0x7B) and skip the hash-tag search.
    if 0x7B not in data:
        return crc_hqx(data, 0) & _MASK
    # partition() is cheaper than find() with index arguments.
    _, _, rest = data.partition(b"{")
    tag, closed, _ = rest.partition(b"}")
    # An empty tag ("{}") or an unclosed one: the whole key is hashed.
    if closed and tag:
        return crc_hqx(tag, 0) & _MASK
    return crc_hqx(data, 0) & _MASK


def _encode_slow(key: KeyT) -> bytes | bytearray:
    """Encode the less common key types (and subclasses) to bytes."""
    if isinstance(key, bytes | bytearray):
        return key
    if isinstance(key, memoryview):
        return key.tobytes()
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bool):
        raise TypeError(f"invalid key type: {key!r} (bool)")
    if isinstance(key, int):
        return b"%d" % int(key)
    if isinstance(key, float):
        return float.__repr__(key).encode()
    raise TypeError(f"invalid key type: {type(key).__name__}")
