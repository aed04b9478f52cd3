"""Key to hash slot: known vectors, a CRC reference, and the server's CLUSTER KEYSLOT."""

from __future__ import annotations

import enum
import random
from binascii import crc_hqx
from typing import Any

import pytest

# The C crc16.crc16xmodem of crc16 0.1.1 raises SystemError on Python 3.10+.
from crc16.crc16pure import crc16xmodem  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from clustermgr.slots import SLOT_COUNT, key_slot


def reference_slot(key: bytes) -> int:
    """Straight from the cluster spec, on the pure-Python CRC."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end != -1 and end != start + 1:
            key = key[start + 1 : end]
    return int(crc16xmodem(key)) % SLOT_COUNT


# -- vectors -------------------------------------------------------------------


def test_slot_count() -> None:
    assert SLOT_COUNT == 16384


def test_crc_check_value() -> None:
    assert crc_hqx(b"123456789", 0) == 0x31C3
    assert crc16xmodem(b"123456789") == 0x31C3
    assert key_slot(b"123456789") == 0x31C3 % 16384


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        (b"foo", 12182),
        (b"somekey", 11058),  # the CLUSTER KEYSLOT examples of the Redis docs
        (b"foo{hash_tag}", 2515),
        (b"", 0),
    ],
)
def test_known_slots(key: bytes, slot: int) -> None:
    assert key_slot(key) == slot


@pytest.mark.parametrize(
    ("key", "hashed"),
    [
        (b"{user1000}.following", b"user1000"),
        (b"{user1000}.followers", b"user1000"),
        (b"foo{}{bar}", b"foo{}{bar}"),  # empty first tag: whole key
        (b"foo{{bar}}zap", b"{bar"),
        (b"foo{bar}{zap}", b"bar"),
        (b"{a}", b"a"),
        (b"{}", b"{}"),
        (b"}{", b"}{"),
        (b"foo{bar", b"foo{bar"),  # unclosed: whole key
        (b"foo}bar{", b"foo}bar{"),
        (b"}{x}", b"x"),
        (b"a{b}c}", b"b"),
    ],
)
def test_hash_tags(key: bytes, hashed: bytes) -> None:
    assert key_slot(key) == crc16xmodem(hashed) % SLOT_COUNT
    assert key_slot(key) == reference_slot(key)


class _Number(enum.IntEnum):
    SEVEN = 7


class _Text(str):
    pass


@pytest.mark.parametrize(
    ("key", "wire"),
    [
        ("foo", b"foo"),
        ("{user1000}.following", b"{user1000}.following"),
        ("ключ{тег}", "ключ{тег}".encode()),
        (123, b"123"),
        (-5, b"-5"),
        (2**70, b"1180591620717411303424"),
        (1.5, b"1.5"),
        (0.1, b"0.1"),
        (1e100, b"1e+100"),
        (-0.0, b"-0.0"),
        (float("inf"), b"inf"),
        (memoryview(b"foo{bar}"), b"foo{bar}"),
        (bytearray(b"{x}y"), b"{x}y"),
        (_Number.SEVEN, b"7"),
        (_Text("abc"), b"abc"),
    ],
)
def test_key_types(key: Any, wire: bytes) -> None:
    assert key_slot(key) == key_slot(wire) == reference_slot(wire)


@pytest.mark.parametrize("key", [True, None, object(), ["a"]])
def test_bad_key_types(key: Any) -> None:
    with pytest.raises(TypeError):
        key_slot(key)


# -- properties ----------------------------------------------------------------

tagged = st.builds(
    lambda pre, tag, post: pre + b"{" + tag + b"}" + post,
    st.binary(max_size=8),
    st.binary(max_size=8),
    st.binary(max_size=8),
)
braces = st.lists(st.sampled_from([b"{", b"}", b"a", b"\xff", b""]), max_size=10).map(b"".join)
keys = st.binary(max_size=64) | tagged | braces


@given(st.binary(max_size=256))
def test_crc_hqx_is_crc16_xmodem(data: bytes) -> None:
    assert crc_hqx(data, 0) == crc16xmodem(data)


@given(keys)
def test_matches_reference(key: bytes) -> None:
    slot = key_slot(key)
    assert 0 <= slot < SLOT_COUNT
    assert slot == reference_slot(key)


@given(st.text(max_size=32))
def test_str_is_utf8(key: str) -> None:
    assert key_slot(key) == key_slot(key.encode())


@given(st.binary(max_size=8), st.binary(max_size=16).filter(lambda t: b"}" not in t))
def test_same_tag_same_slot(tag: bytes, suffix: bytes) -> None:
    if tag and b"}" not in tag and b"{" not in tag:
        assert key_slot(b"{" + tag + b"}" + suffix) == key_slot(b"x{" + tag + b"}") == key_slot(tag)


# -- the server ----------------------------------------------------------------


def _server_slots(server: Any, keys: list[Any]) -> list[int]:
    replies: list[int] = server.execute_many([("CLUSTER", "KEYSLOT", k) for k in keys])
    for reply in replies:
        assert isinstance(reply, int), reply
    return replies


def test_server_agrees_on_generated_keys(raw_redis_server: Any) -> None:
    rng = random.Random(20240607)
    alphabet = b"{}ab\x00\xff:"
    generated: list[Any] = [b"", b"{", b"}", b"{}", b"{{}}", b"foo{}{bar}", b"foo{{bar}}zap"]
    for _ in range(4000):
        generated.append(bytes(rng.choice(alphabet) for _ in range(rng.randrange(12))))
    for _ in range(2000):
        size = rng.randrange(40)
        generated.append(rng.randbytes(size))
    for _ in range(1000):
        tag = rng.randbytes(rng.randrange(6)).replace(b"}", b"")
        generated.append(b"user:{" + tag + b"}:" + rng.randbytes(rng.randrange(6)))
    # Non-bytes keys go through hiredis.pack_command, the connection's encoder.
    generated += ["ключ{тег}", "plain", 0, -1, 2**63, 1.5, 0.1, -0.0, 1e100, 1e-7, float("inf")]
    assert _server_slots(raw_redis_server, generated) == [key_slot(k) for k in generated]


@settings(max_examples=10, deadline=None)
@given(st.lists(keys, min_size=100, max_size=600))
def test_server_agrees_on_hypothesis_keys(raw_redis_server: Any, batch: list[bytes]) -> None:
    assert _server_slots(raw_redis_server, batch) == [key_slot(k) for k in batch]


def test_timing_smoke() -> None:
    # Not a benchmark (no timing asserted): the hot path runs without error.
    for _ in range(10_000):
        key_slot(b"some:key:12345")
        key_slot(b"user:{1000}:following")
