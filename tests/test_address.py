"""Address and URL parsing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from clustermgr.address import InvalidAddressError, ServerAddress, parse_address
from clustermgr.errors import RedisError


def test_tuple_and_path() -> None:
    assert parse_address(("127.0.0.1", 6380)).target == ("127.0.0.1", 6380)
    assert parse_address("/tmp/redis.sock").target == "/tmp/redis.sock"


def test_redis_url_with_everything() -> None:
    parsed = parse_address(
        "redis://alice:s%40cret@127.0.0.1:7000/3?encoding=utf-8&timeout=1.5&name=app"
    )
    assert parsed.target == ("127.0.0.1", 7000)
    assert (parsed.username, parsed.password, parsed.db) == ("alice", "s@cret", 3)
    assert (parsed.encoding, parsed.timeout, parsed.name) == ("utf-8", 1.5, "app")
    assert not parsed.ssl


def test_password_only_and_defaults() -> None:
    parsed = parse_address("rediss://:pw@localhost")
    assert parsed.ssl and parsed.port == 6379 and parsed.password == "pw"
    assert parsed.username is None and parsed.db is None


def test_unix_url() -> None:
    parsed = parse_address("unix://:pw@/var/run/redis.sock?db=2")
    assert parsed.target == "/var/run/redis.sock"
    assert (parsed.password, parsed.db) == ("pw", 2)


def test_unix_url_without_slashes() -> None:
    """``urlunparse(("unix", "", path, "", query, ""))`` (and aioredis) write ``unix:/path``."""
    parsed = parse_address("unix:/var/run/redis.sock?db=3&password=pw")
    assert parsed.target == "/var/run/redis.sock"
    assert (parsed.password, parsed.db) == ("pw", 3)


def test_password_hidden_in_repr() -> None:
    parsed = parse_address("redis://u:topsecret@127.0.0.1:1")
    assert "topsecret" not in repr(parsed)


def test_with_defaults_fills_only_missing() -> None:
    parsed = parse_address("redis://127.0.0.1:1/2").with_defaults(db=5, password="x")
    assert parsed.db == 2 and parsed.password == "x"


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("http://127.0.0.1", "unsupported URL scheme"),
        ("redis://127.0.0.1:99999", "bad port"),
        ("redis://127.0.0.1/notadb", "db must be"),
        ("redis://127.0.0.1?bogus=1", "unknown URL option 'bogus'"),
        ("redis://127.0.0.1?timeout=soon", "timeout must be"),
        ("redis://", "no host"),
        ("unix://", "without a socket path"),
        ("unix:", "without a socket path"),
        ("localhost:6379", "neither a URL"),
        (("127.0.0.1",), "must be (host, port)"),
        (("127.0.0.1", "x"), "port must be"),
        (("127.0.0.1", 0), "port must be"),
        (("127.0.0.1", True), "port must be"),
        (("", 1), "host must be"),
        (42, "address must be"),
    ],
)
def test_bad_addresses_say_what_is_wrong(address: object, fragment: str) -> None:
    with pytest.raises(InvalidAddressError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_address(address)


def test_errors_hide_the_password() -> None:
    with pytest.raises(InvalidAddressError) as info:
        parse_address("redis://u:topsecret@127.0.0.1/x")
    assert "topsecret" not in str(info.value)
    with pytest.raises(InvalidAddressError) as info:
        parse_address("redis://127.0.0.1?password=topsecret&bogus=1")
    assert "topsecret" not in str(info.value)


def test_invalid_address_is_a_redis_and_value_error() -> None:
    assert issubclass(InvalidAddressError, RedisError)
    assert issubclass(InvalidAddressError, ValueError)


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True),
    port=st.integers(1, 65535),
    db=st.integers(0, 10_000),
)
def test_url_round_trip(host: str, port: int, db: int) -> None:
    parsed = parse_address(f"redis://{host}:{port}/{db}")
    assert parsed == ServerAddress(host=host, port=port, db=db)


@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes_unexpectedly(text: str) -> None:
    with contextlib.suppress(InvalidAddressError):
        parse_address(text)


@pytest.mark.parametrize("url", ["redis://[", "redis://u:pw@[::1", "rediss://h]:6379?password=pw"])
def test_unbalanced_brackets_are_invalid_address(url: str) -> None:
    # Regression (found by tests/fuzz/fuzz_parsers.py): urlsplit's bare ValueError escaped.
    with pytest.raises(InvalidAddressError) as info:
        parse_address(url)
    assert "pw" not in str(info.value)


@given(
    scheme=st.sampled_from(["redis://", "rediss://", "unix://"]),
    text=st.text(max_size=40),
    password=st.text(alphabet="abcdefghijklmnop0123456789", min_size=12, max_size=20),
)
def test_url_like_text_fails_typed_and_hides_password(
    scheme: str, text: str, password: str
) -> None:
    assume(password not in text)
    for url in (f"{scheme}user:{password}@{text}", f"{scheme}{text}?password={password}"):
        try:
            address = parse_address(url)
        except InvalidAddressError as exc:
            assert password not in str(exc)
        else:
            assert password not in repr(address)


@pytest.mark.parametrize(
    "url", ["redis://:pa/sswd@host:6379", "redis://user:s3cr3t/x@host", "redis://:pw?d@h:1"]
)
def test_password_with_unescaped_separator_is_not_leaked(url: str) -> None:
    # Regression (found by tests/fuzz/fuzz_parsers.py): a "/" or "?" in the password
    # ends the userinfo early, so urllib read part of the password as the port.
    secret = url.split(":", 2)[2].split("@")[0]
    try:
        address = parse_address(url)
    except InvalidAddressError as exc:
        for piece in (secret, secret.split("/")[0].split("?")[0]):
            assert piece not in str(exc)
    else:
        assert secret not in repr(address)
