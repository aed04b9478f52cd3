"""Bad options are refused when a pool or connection is created, by one check
(:mod:`clustermgr.options`) shared by every factory, with a typed error naming
the option, before anything connects (a fake server counts the connects)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest
from fake_server import FakeServer
from hypothesis import given
from hypothesis import strategies as st

from clustermgr import create_connection, create_pool
from clustermgr.address import InvalidAddressError, parse_address
from clustermgr.cluster import RefreshOptions, create_cluster_pool
from clustermgr.options import InvalidOptionError, OptionTypeError, check_options
from clustermgr.pool import ConnectionsPool
from clustermgr.sentinel import create_sentinel, create_sentinel_pool

NAN = math.nan

Opener = Callable[[str, dict[str, Any]], Awaitable[Any]]

OPENERS: dict[str, Opener] = {
    "connection": lambda url, kw: create_connection(url, **kw),
    "pool": lambda url, kw: create_pool(url, **kw),
    "cluster": lambda url, kw: create_cluster_pool([url], **kw),
    "sentinel": lambda url, kw: create_sentinel([url], **kw),
    "sentinel_pool": lambda url, kw: create_sentinel_pool([url], "svc", **kw),
}

SHARED = [
    ({"ssl": "yes"}, "ssl", OptionTypeError),
    ({"ssl": 1}, "ssl", OptionTypeError),
]
WITH_ENCODING = [
    ({"encoding": "no-such-codec"}, "encoding", InvalidOptionError),
    ({"encoding": 8}, "encoding", OptionTypeError),
]
POOLS = [
    ({"minsize": -1}, "minsize", InvalidOptionError),
    ({"maxsize": 0}, "maxsize", InvalidOptionError),
    ({"maxsize": 2.5}, "maxsize", OptionTypeError),
    ({"minsize": 3, "maxsize": 2}, "minsize", InvalidOptionError),
]
READ_TIMEOUT = [
    ({"read_timeout": -1}, "read_timeout", InvalidOptionError),
    ({"read_timeout": NAN}, "read_timeout", InvalidOptionError),
]

# (opener, keyword arguments, URL suffix, option named, error type)
CASES: list[tuple[str, dict[str, Any], str, str, type[Exception]]] = [
    *[(o, kw, "", name, err) for o in OPENERS for kw, name, err in SHARED],
    *[(o, kw, "", name, err)
      for o in ("connection", "pool", "cluster", "sentinel_pool")
      for kw, name, err in WITH_ENCODING],
    *[(o, kw, "", name, err) for o in ("pool", "cluster", "sentinel_pool")
      for kw, name, err in POOLS],
    *[(o, kw, "", name, err) for o in ("pool", "cluster") for kw, name, err in READ_TIMEOUT],
    # URL options, on every factory that takes a data-node URL
    *[(o, {}, suffix, name, InvalidAddressError)
      for o in ("connection", "pool", "cluster", "sentinel")
      for suffix, name in [
          ("?timeout=nan", "timeout"), ("?timeout=-1", "timeout"), ("?timeout=inf", "timeout"),
          ("?timeout=0", "timeout"),
      ]],
    *[(o, {}, "?encoding=no-such-codec", "encoding", InvalidAddressError)
      for o in ("connection", "pool", "cluster")],
    ("connection", {"timeout": -1}, "", "timeout", InvalidOptionError),
    ("connection", {"timeout": NAN}, "", "timeout", InvalidOptionError),
    ("connection", {"timeout": "1"}, "", "timeout", OptionTypeError),
    ("connection", {"db": -1}, "", "db", InvalidOptionError),
    ("connection", {"db": "1"}, "", "db", OptionTypeError),
    ("connection", {"read_timeout": 0}, "", "read_timeout", InvalidOptionError),
    ("connection", {"password": 5}, "", "password", OptionTypeError),
    ("pool", {"acquire_timeout": -1}, "", "acquire_timeout", InvalidOptionError),
    ("pool", {"create_connection_timeout": NAN}, "", "create_connection_timeout",
     InvalidOptionError),
    ("pool", {"db": -2}, "", "db", InvalidOptionError),
    ("pool", {"on_connect": "hello"}, "", "on_connect", OptionTypeError),
    ("cluster", {"read_from": "bogus"}, "", "read_from", InvalidOptionError),
    ("cluster", {"max_redirects": -1}, "", "max_redirects", InvalidOptionError),
    ("cluster", {"retry_timeout": NAN}, "", "retry_timeout", InvalidOptionError),
    ("cluster", {"retry_timeout": None}, "", "retry_timeout", OptionTypeError),
    ("cluster", {"connect_timeout": -1}, "", "connect_timeout", InvalidOptionError),
    ("cluster", {}, "/3", "db", InvalidAddressError),
    ("cluster", {}, "?db=1", "db", InvalidAddressError),
    ("cluster", {"password": "other"}, "", "password", InvalidOptionError),
    ("sentinel", {"timeout": -1}, "", "timeout", InvalidOptionError),
    ("sentinel", {"timeout": NAN}, "", "timeout", InvalidOptionError),
    ("sentinel_pool", {"max_retries": -1}, "", "max_retries", InvalidOptionError),
    ("sentinel_pool", {"acquire_timeout": -1}, "", "acquire_timeout", InvalidOptionError),
    ("sentinel_pool", {"failover_timeout": NAN}, "", "failover_timeout", InvalidOptionError),
    ("sentinel_pool", {"sentinel_timeout": 0}, "", "sentinel_timeout", InvalidOptionError),
    ("sentinel_pool", {"poll_interval": -1}, "", "poll_interval", InvalidOptionError),
    ("sentinel_pool", {"rediscover_interval": 0}, "", "rediscover_interval",
     InvalidOptionError),
    ("sentinel_pool", {"role_check_interval": -1}, "", "role_check_interval",
     InvalidOptionError),
    ("sentinel_pool", {"create_connection_timeout": -1}, "", "create_connection_timeout",
     InvalidOptionError),
    ("sentinel_pool", {"db": -1}, "", "db", InvalidOptionError),
    ("sentinel_pool", {"sentinel_ssl": "yes"}, "", "sentinel_ssl", OptionTypeError),
    ("sentinel_pool", {"early_release": "yes"}, "", "early_release", OptionTypeError),
    ("sentinel_pool", {"role": "leader"}, "", "role", InvalidOptionError),
    ("sentinel_pool", {"connection_cls": int}, "", "connection_cls", OptionTypeError),
    ("connection", {"connection_cls": int}, "", "connection_cls", OptionTypeError),
    ("pool", {"pool_cls": dict}, "", "pool_cls", OptionTypeError),
    ("pool", {"connection_cls": int}, "", "connection_cls", OptionTypeError),
    ("cluster", {"pool_cls": dict}, "", "pool_cls", OptionTypeError),
    ("cluster", {"connection_cls": int}, "", "connection_cls", OptionTypeError),
    ("cluster", {"refresh": "fast"}, "", "refresh", OptionTypeError),
    *[(o, {"credential_provider": "pw"}, "", "credential_provider", OptionTypeError)
      for o in ("connection", "pool", "cluster", "sentinel_pool")],
    *[(o, {"address_remap": {}}, "", "address_remap", OptionTypeError)
      for o in ("cluster", "sentinel", "sentinel_pool")],
    *[(o, {"lazy": "yes"}, "", "lazy", OptionTypeError)
      for o in ("pool", "cluster", "sentinel_pool")],
    ("cluster", {"read_from": "az_affinity", "client_az": 5}, "", "client_az", OptionTypeError),
    ("cluster", {"read_from": "az_affinity", "client_az": b"az-b"}, "", "client_az",
     OptionTypeError),
    ("cluster", {"read_from": "az_affinity"}, "", "client_az", InvalidOptionError),
    ("cluster", {"client_az": "az-a"}, "", "client_az", InvalidOptionError),
    *[(o, {"parser": "hiredis"}, "", "parser", OptionTypeError)
      for o in ("connection", "pool", "sentinel_pool")],
]


def _case_id(case: tuple[str, dict[str, Any], str, str, type[Exception]]) -> str:
    opener, kwargs, suffix, name, _ = case
    shown = ",".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{opener}-{shown}{suffix}" if shown or suffix else f"{opener}-{name}"


@pytest.mark.parametrize(
    ("opener", "kwargs", "suffix", "option", "error"), CASES, ids=[_case_id(c) for c in CASES]
)
async def test_bad_option_is_refused_before_connecting(
    opener: str, kwargs: dict[str, Any], suffix: str, option: str, error: type[Exception]
) -> None:
    async with FakeServer() as server:
        password = "" if "password" not in kwargs else "app:urlpw@"
        url = f"redis://{password}127.0.0.1:{server.port}{suffix}"
        with pytest.raises(error) as info:
            result = await OPENERS[opener](url, kwargs)
            result.close()
            await result.wait_closed()
        assert server.accepted == 0, "connected before refusing the option"
    assert isinstance(info.value, InvalidOptionError)
    assert info.value.option == option
    assert option in str(info.value)


@pytest.mark.parametrize(
    ("address", "option"),
    [
        ("redis://127.0.0.1:0", "address"),
        ("rediss://127.0.0.1:0/1", "address"),
        ("redis://127.0.0.1:65536", "address"),
        ("redis://127.0.0.1:-1", "address"),
        (("127.0.0.1", 0), "address"),
        (("127.0.0.1", 65536), "address"),
        (b"redis://\xff\xfe:6379", "address"),
        (b"/tmp/\xc3(.sock", "address"),
        ("redis://\udcff:1", "address"),  # what os.fsdecode() makes of bad bytes
        (("h\udcff", 1), "address"),
        ("/tmp/\udcff.sock", "address"),
        ("redis://u:pw\udcff@h:1", "address"),
        ("redis://h:1?name=\udcff", "address"),
        ("redis://127.0.0.1?timeout=nan", "timeout"),
        ("redis://127.0.0.1?timeout=-0.5", "timeout"),
        ("redis://127.0.0.1?encoding=klingon", "encoding"),
    ],
)
def test_bad_addresses_name_the_option(address: Any, option: str) -> None:
    with pytest.raises(InvalidAddressError) as info:
        parse_address(address)
    assert info.value.option == option
    assert isinstance(info.value, InvalidOptionError)


async def test_non_utf8_address_is_refused_by_every_factory() -> None:
    for opener in OPENERS.values():
        with pytest.raises(InvalidAddressError, match="UTF-8"):
            await opener(b"redis://\xff:1", {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delay", "error"),
    [((-1.0, 2.0), InvalidOptionError), ((3.0, 2.0), InvalidOptionError),
     ((0.1, NAN), InvalidOptionError), ((0.1,), OptionTypeError), ("1,2", OptionTypeError)],
)
async def test_reconnect_delay_is_checked(delay: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        ConnectionsPool(("127.0.0.1", 1), reconnect_delay=delay)
    assert isinstance(info.value, InvalidOptionError) and info.value.option == "reconnect_delay"


def test_good_options_pass() -> None:
    check_options(
        timeout=None, read_timeout=0.5, acquire_timeout=1, minsize=0, maxsize=1, db=0,
        encoding="utf-8", ssl=None, max_retries=None, max_redirects=0,
        reconnect_delay=(0, 0), early_release=False, on_connect=print,
    )
    check_options(ssl=True, sentinel_ssl=False, encoding="latin-1", max_retries=0)


def test_option_errors_are_value_errors_and_type_errors_where_fitting() -> None:
    assert issubclass(InvalidOptionError, ValueError)
    assert issubclass(OptionTypeError, TypeError)
    assert issubclass(InvalidAddressError, InvalidOptionError)


@pytest.mark.parametrize(
    ("kwargs", "option", "error"),
    [
        ({"period": NAN}, "period", InvalidOptionError),
        ({"period": 0}, "period", InvalidOptionError),
        ({"min_interval": -1}, "min_interval", InvalidOptionError),
        ({"min_interval": NAN}, "min_interval", InvalidOptionError),
        ({"query_nodes": 0}, "query_nodes", InvalidOptionError),
        ({"query_nodes": 1.5}, "query_nodes", OptionTypeError),
        ({"node_timeout": NAN}, "node_timeout", InvalidOptionError),
        ({"node_timeout": None}, "node_timeout", OptionTypeError),
    ],
)
def test_refresh_options_are_checked(
    kwargs: dict[str, Any], option: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        RefreshOptions(**kwargs)
    assert isinstance(info.value, InvalidOptionError) and info.value.option == option


async def test_empty_address_lists_are_refused() -> None:
    for opener, option in [
        (lambda: create_cluster_pool([]), "startup_nodes"),
        (lambda: create_sentinel([]), "sentinels"),
        (lambda: create_sentinel_pool([], "svc"), "sentinels"),
    ]:
        with pytest.raises(InvalidOptionError) as info:
            await opener()
        assert info.value.option == option


@pytest.mark.parametrize("option", ["password", "username", "name", "sentinel_password"])
def test_text_options_must_be_utf8(option: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        check_options(**{option: "s3cret\udcff"})
    assert info.value.option == option and "s3cret" not in str(info.value)


@pytest.mark.parametrize("address", [b"redis://u:s3cret\xff@h:1", "redis://u:s3cret\udcff@h:1"])
def test_non_utf8_address_errors_hide_the_password(address: Any) -> None:
    with pytest.raises(InvalidAddressError, match="not UTF-8") as info:
        parse_address(address)
    assert "s3cret" not in str(info.value)


@given(value=st.floats() | st.integers(-10, 10**9))
def test_a_timeout_is_accepted_exactly_when_finite_and_positive(value: float) -> None:
    good = math.isfinite(value) and value > 0
    for check in (lambda: check_options(timeout=value),
                  lambda: parse_address(f"redis://h?timeout={quote(str(value))}")):
        try:
            check()
        except InvalidOptionError as exc:
            assert not good and exc.option == "timeout"
        else:
            assert good


@given(port=st.integers(-3, 70_000))
def test_a_url_port_is_accepted_exactly_in_1_to_65535(port: int) -> None:
    try:
        parsed = parse_address(f"redis://127.0.0.1:{port}")
    except InvalidAddressError as exc:
        assert not 0 < port < 65536 and exc.option == "address"
    else:
        assert 0 < port < 65536 and parsed.port == port


def test_option_errors_survive_pickling() -> None:
    import pickle

    from clustermgr.tlsopts import TlsConflictError

    for error in (InvalidOptionError("m", option="ssl"), OptionTypeError("t", option="db"),
                  InvalidAddressError("a"), TlsConflictError("c", option="sentinel_ssl")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert copy.option == error.option


@pytest.mark.parametrize("value", [0, -1, NAN, math.inf])
async def test_a_connection_built_directly_checks_read_timeout(value: float) -> None:
    from clustermgr.connection import RedisConnection

    with pytest.raises(InvalidOptionError) as info:
        RedisConnection(parse_address(("127.0.0.1", 1)), read_timeout=value)
    assert info.value.option == "read_timeout"
