"""Command table: key extraction, properties and policies, against a recorded and a live server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustermgr.commands import (
    _CANNED_SPECS,
    SPLITTABLE_COMMANDS,
    CommandInfo,
    CommandTable,
    KeySpec,
)
from clustermgr.errors import CrossSlotError, ProtocolError
from clustermgr.slots import key_slot

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "command_7.0.json").read_text())


def _to_bytes(obj: Any) -> Any:
    """What hiredis hands over without an encoding: bytes instead of str."""
    if isinstance(obj, str):
        return obj.encode()
    if isinstance(obj, list):
        return [_to_bytes(o) for o in obj]
    return obj


def _to_resp3(obj: Any) -> Any:
    """Key specs as RESP3 maps (dicts) instead of flat arrays."""

    def spec(raw: list[Any]) -> dict[str, Any]:
        out = dict(zip(raw[::2], raw[1::2], strict=True))
        for part in ("begin_search", "find_keys"):
            inner = dict(zip(out[part][::2], out[part][1::2], strict=True))
            inner["spec"] = dict(zip(inner["spec"][::2], inner["spec"][1::2], strict=True))
            out[part] = inner
        return out

    def entry(e: list[Any]) -> list[Any]:
        return [*e[:8], [spec(s) for s in e[8]], [entry(s) for s in e[9]]]

    return [entry(e) for e in obj]


def _legacy(obj: Any) -> Any:
    """A Redis 6 shaped reply: the first 7 fields only."""
    return [e[:7] for e in obj]


TABLES: dict[str, Callable[[], CommandTable]] = {
    "recorded": lambda: CommandTable.from_command_reply(RECORDED),
    "bytes": lambda: CommandTable.from_command_reply(_to_bytes(RECORDED)),
    "resp3": lambda: CommandTable.from_command_reply(_to_resp3(RECORDED)),
    "legacy": lambda: CommandTable.from_command_reply(_legacy(RECORDED)),
    "builtin": CommandTable.builtin,
}


@pytest.fixture(scope="module", params=list(TABLES))
def any_table(request: pytest.FixtureRequest) -> CommandTable:
    return TABLES[request.param]()


@pytest.fixture(scope="module")
def table() -> CommandTable:
    return CommandTable.from_command_reply(RECORDED)


# (command line, expected keys without shard channels, expected routing keys)
EXAMPLES: list[tuple[str, list[str], list[str] | None]] = [
    ("GET foo", ["foo"], None),
    ("SET foo bar", ["foo"], None),
    ("SET foo bar GET", ["foo"], None),
    ("MSET a 1 b 2 c 3", ["a", "b", "c"], None),
    ("MSETNX a 1 b 2", ["a", "b"], None),
    ("MGET a b c", ["a", "b", "c"], None),
    ("DEL a b", ["a", "b"], None),
    ("UNLINK a", ["a"], None),
    ("EXISTS a b a", ["a", "b", "a"], None),
    ("ZUNIONSTORE dest 2 k1 k2", ["dest", "k1", "k2"], None),
    ("ZUNIONSTORE dest 2 k1 k2 WEIGHTS 1 2 AGGREGATE MAX", ["dest", "k1", "k2"], None),
    ("ZINTERSTORE dest 1 k1", ["dest", "k1"], None),
    ("ZINTERCARD 2 a b LIMIT 5", ["a", "b"], None),
    ("ZUNION 2 a b WITHSCORES", ["a", "b"], None),
    ("LMPOP 2 a b LEFT COUNT 2", ["a", "b"], None),
    ("BLMPOP 0 2 a b LEFT", ["a", "b"], None),
    ("BZMPOP 1 1 z MIN", ["z"], None),
    ("XREAD COUNT 2 STREAMS s1 s2 0 0", ["s1", "s2"], None),
    ("XREAD BLOCK 0 STREAMS s1 $", ["s1"], None),
    ("XREADGROUP GROUP g c STREAMS s1 >", ["s1"], None),
    ("XREADGROUP GROUP g c COUNT 1 BLOCK 0 NOACK STREAMS s1 s2 > >", ["s1", "s2"], None),
    ("EVAL script 2 k1 k2 a1", ["k1", "k2"], None),
    ("EVAL script 0 a1", [], None),
    ("EVALSHA sha 1 k1", ["k1"], None),
    ("EVAL_RO script 1 k1 a1 a2", ["k1"], None),
    ("FCALL fn 2 k1 k2", ["k1", "k2"], None),
    ("FCALL_RO fn 1 k1", ["k1"], None),
    ("SORT k", ["k"], None),
    ("SORT k BY w_* GET o_* LIMIT 0 10 ALPHA STORE dst", ["k", "dst"], None),
    ("SORT_RO k BY w_*", ["k"], None),
    ("OBJECT ENCODING key", ["key"], None),
    ("OBJECT HELP", [], None),
    ("MEMORY USAGE key SAMPLES 5", ["key"], None),
    ("MEMORY STATS", [], None),
    ("XINFO STREAM key FULL", ["key"], None),
    ("XINFO GROUPS key", ["key"], None),
    ("XGROUP CREATE s g $ MKSTREAM", ["s"], None),
    ("GEORADIUS k 1 2 3 m STORE d", ["k", "d"], None),
    ("GEORADIUS k 1 2 3 m WITHDIST STOREDIST d", ["k", "d"], None),
    ("GEORADIUS k 1 2 3 m", ["k"], None),
    ("GEORADIUSBYMEMBER k m 3 km STORE d", ["k", "d"], None),
    ("BITOP AND dest k1 k2", ["dest", "k1", "k2"], None),
    ("RENAME a b", ["a", "b"], None),
    ("SMOVE a b m", ["a", "b"], None),
    ("BLPOP k1 k2 0", ["k1", "k2"], None),
    ("BRPOPLPUSH a b 0", ["a", "b"], None),
    ("LMOVE a b LEFT RIGHT", ["a", "b"], None),
    ("PUBLISH ch msg", [], []),
    ("SPUBLISH ch msg", [], ["ch"]),
    ("SSUBSCRIBE ch1 ch2", [], ["ch1", "ch2"]),
    ("SUNSUBSCRIBE", [], []),
    ("MIGRATE host 6379 key 0 100", ["key"], None),
    ("MIGRATE host 6379 '' 0 100 COPY KEYS a b", ["a", "b"], None),
    ("MIGRATE host 6379 '' 0 100 AUTH KEYS KEYS a", ["a"], None),
    ("MIGRATE host 6379 '' 0 100 AUTH2 u KEYS KEYS b", ["b"], None),
    ("PING", [], None),
    ("DBSIZE", [], None),
    ("CLUSTER INFO", [], None),
    ("SCRIPT LOAD body", [], None),
    ("WATCH a b", ["a", "b"], None),
]


def split(line: str) -> tuple[str, list[str]]:
    command, *args = ["" if word == "''" else word for word in line.split()]
    return command, args


@pytest.mark.parametrize(("line", "expected", "routing"), EXAMPLES)
def test_examples(
    any_table: CommandTable, line: str, expected: list[str], routing: list[str] | None
) -> None:
    command, args = split(line)
    routing = expected if routing is None else routing
    assert any_table.keys(command, args, include_channels=False) == expected
    assert any_table.keys(command, args) == routing
    assert any_table.first_key(command, args) == (routing[0] if routing else None)
    # Same answer for bytes and for any case of the name.
    raw = [a.encode() for a in args]
    assert any_table.keys(command.lower().encode(), raw) == [k.encode() for k in routing]
    assert any_table.keys(command.title(), tuple(args)) == routing


@pytest.mark.parametrize(("line", "expected", "routing"), EXAMPLES)
def test_example_slots(
    table: CommandTable, line: str, expected: list[str], routing: list[str] | None
) -> None:
    command, args = split(line)
    routing = expected if routing is None else routing
    slots = {key_slot(k) for k in routing}
    if not slots:
        assert table.slot(command, args) is None
    elif len(slots) == 1:
        assert table.slot(command, args) == slots.pop()
    else:
        with pytest.raises(CrossSlotError):
            table.slot(command, args)
    # Hash-tagging every key puts them in one slot.
    tagged = [f"{{t}}{a}" if a in routing else a for a in args]
    if routing and "MIGRATE" not in line:
        assert table.slot(command, tagged) == key_slot(b"t")


def test_slot_fast_paths(table: CommandTable) -> None:
    assert table.slot(b"GET", (b"foo",)) == 12182
    assert table.slot(b"SET", (b"foo", b"bar")) == 12182
    assert table.slot("get", ["foo"]) == 12182
    assert table.slot(b"GET", (b"{foo}x",)) == 12182
    assert table.slot(b"GET", ()) is None
    assert table.slot(b"HGET", (b"foo", b"field")) == 12182
    assert table.slot(b"MGET", (b"{a}1", b"{a}2")) == key_slot(b"a")
    assert table.slot(b"PING", ()) is None
    assert table.slot(b"PUBLISH", (b"foo", b"m")) is None
    assert table.slot(b"SPUBLISH", (b"foo", b"m")) == 12182
    with pytest.raises(CrossSlotError, match="CROSSSLOT"):
        table.slot(b"MGET", (b"foo", b"bar"))
    with pytest.raises(CrossSlotError):
        table.slot(b"EVAL", (b"s", 2, b"foo", b"bar"))


def test_unknown_commands(any_table: CommandTable) -> None:
    assert any_table.info(b"NOSUCH") is None
    assert any_table.info("nosuch", ["x"]) is None
    assert b"NOSUCH" not in any_table
    # The first argument stands in for the key.
    assert any_table.keys(b"NOSUCH", (b"x", b"y")) == [b"x"]
    assert any_table.first_key(b"NOSUCH", (b"x",)) == b"x"
    assert any_table.slot(b"NOSUCH", (b"foo",)) == 12182
    assert any_table.slot(b"NOSUCH", ()) is None
    assert any_table.multi_key_layout(b"NOSUCH") is None


def test_names_any_case(any_table: CommandTable) -> None:
    get = any_table.info("get")
    assert get is not None
    for spelling in (b"GET", b"get", b"Get", "GET", "gEt", bytearray(b"GET")):
        assert any_table.info(spelling) is get  # type: ignore[arg-type]
        assert spelling in any_table
    assert any_table.info("g\u0130t") is None  # no Unicode case folding


def test_properties(table: CommandTable) -> None:
    def info(line: str) -> CommandInfo:
        command, args = split(line)
        found = table.info(command, args)
        assert found is not None
        return found

    get, set_ = info("GET"), info("SET")
    assert get.name == "get" and get.arity == 2 and get.readonly and not get.write
    assert set_.write and not set_.readonly and set_.arity == -3
    assert "denyoom" in set_.flags
    assert info("BLPOP").is_blocking and not get.is_blocking
    assert info("XREAD").movablekeys and info("XREAD").readonly
    assert info("EVAL").noscript and not info("EVAL").readonly
    assert info("EVAL_RO").readonly
    spublish = info("SPUBLISH")
    assert spublish.pubsub and spublish.shard_channel and not spublish.keyless
    assert info("PUBLISH").pubsub and info("PUBLISH").keyless and not info("PUBLISH").shard_channel
    assert info("PING").keyless and not get.keyless
    assert "@read" in get.acl_categories
    assert info("FLUSHALL").admin is False and info("CONFIG SET x y").admin

    encoding = info("OBJECT ENCODING k")
    assert encoding.name == "object|encoding" and encoding.readonly
    assert info("object").name == "object"
    assert info("OBJECT nosuch").name == "object"
    assert not info("OBJECT").keyless  # some subcommands take keys
    assert info("CLUSTER INFO").name == "cluster|info"
    assert info("XINFO STREAM k").name == "xinfo|stream"
    assert info("MEMORY USAGE k").readonly
    assert set(table.commands["object"].subcommands) >= {"encoding", "freq", "help"}


def test_policies(table: CommandTable) -> None:
    def policies(line: str) -> tuple[str | None, str | None]:
        command, args = split(line)
        found = table.info(command, args)
        assert found is not None
        return found.request_policy, found.response_policy

    assert policies("DBSIZE") == ("all_shards", "agg_sum")
    assert policies("KEYS *") == ("all_shards", None)
    assert policies("FLUSHALL") == ("all_shards", "all_succeeded")
    assert policies("FLUSHDB") == ("all_shards", "all_succeeded")
    assert policies("PING") == ("all_shards", "all_succeeded")
    assert policies("SCAN 0") == ("special", None)
    assert policies("SCRIPT LOAD x") == ("all_nodes", "all_succeeded")
    assert policies("SCRIPT FLUSH") == ("all_nodes", "all_succeeded")
    assert policies("SCRIPT EXISTS a") == ("all_shards", "agg_logical_and")
    assert policies("MGET a") == ("multi_shard", None)
    assert policies("DEL a") == ("multi_shard", "agg_sum")
    assert policies("GET a") == (None, None)

    all_shards = table.by_request_policy("all_shards")
    assert {"flushall", "flushdb", "dbsize", "keys", "ping", "script|exists"} <= all_shards
    assert {"script|load", "script|flush", "config|set"} <= table.by_request_policy("all_nodes")
    assert "scan" in table.by_request_policy("special")


def test_policies_on_every_table(any_table: CommandTable) -> None:
    # The legacy (Redis 6) and builtin tables take them from the builtin rows.
    info = any_table.info("SCRIPT", ["LOAD", "x"])
    assert info is not None and info.request_policy == "all_nodes"
    dbsize = any_table.info("DBSIZE")
    assert dbsize is not None and dbsize.response_policy == "agg_sum"
    assert {"flushall", "dbsize", "keys"} <= any_table.by_request_policy("all_shards")


def test_multi_key_layout(any_table: CommandTable) -> None:
    assert any_table.multi_key_layout(b"MGET") == (0, 1)
    assert any_table.multi_key_layout("mset") == (0, 2)
    for name in ("DEL", "UNLINK", "EXISTS", "TOUCH"):
        assert any_table.multi_key_layout(name) == (0, 1)
    assert any_table.multi_key_layout(b"MSETNX") is None  # atomic: never split
    assert any_table.multi_key_layout(b"GET") is None
    assert any_table.multi_key_layout(b"SUNION") is None
    assert {"mget", "mset", "del", "unlink", "exists", "touch"} == SPLITTABLE_COMMANDS


# -- consistency of the shipped data with the recorded server ------------------


def test_builtin_matches_recorded(table: CommandTable) -> None:
    builtin = CommandTable.builtin()
    assert len(builtin) > 100
    policy = ("request_policy:", "response_policy:")
    for name, info in builtin.commands.items():
        real = table.commands[name]
        pairs = [(info, real)] + [
            (sub, real.subcommands[short]) for short, sub in info.subcommands.items()
        ]
        for mine, theirs in pairs:
            assert mine.name == theirs.name
            assert mine.arity == theirs.arity, name
            assert mine.flags == theirs.flags, name
            assert (mine.first_key, mine.last_key, mine.step) == (
                theirs.first_key,
                theirs.last_key,
                theirs.step,
            ), name
            assert mine.tips == {t for t in theirs.tips if t.startswith(policy)}, name


def _layout(spec: KeySpec) -> tuple[Any, ...]:
    return (
        spec.not_key,
        spec.begin_search,
        spec.index if spec.begin_search == "index" else (spec.keyword, spec.startfrom),
        spec.find_keys,
        (spec.lastkey, spec.keystep, spec.limit)
        if spec.find_keys == "range"
        else (spec.keynumidx, spec.firstkey, spec.keystep),
    )


@pytest.mark.parametrize("name", sorted(set(_CANNED_SPECS) - {"stralgo"}))
def test_canned_specs_match_recorded(table: CommandTable, name: str) -> None:
    real = table.commands[name].key_specs
    assert [_layout(s) for s in _CANNED_SPECS[name]] == [_layout(s) for s in real]


def test_reply_forms_agree() -> None:
    tables = {name: make() for name, make in TABLES.items() if name != "builtin"}
    reference = tables.pop("recorded")
    for other in tables.values():
        assert set(other.commands) == set(reference.commands)
    for name in ("recorded", "bytes", "resp3"):
        t = TABLES[name]()
        for cmd, info in reference.commands.items():
            assert t.commands[cmd].key_specs == info.key_specs
            assert t.commands[cmd].tips == info.tips


def test_redis6_only_commands() -> None:
    stralgo = ["stralgo", -2, ["readonly", "movablekeys"], 0, 0, 0, ["@read", "@slow"]]
    t = CommandTable.from_command_reply([stralgo])
    assert t.keys("STRALGO", ["LCS", "KEYS", "a", "b"]) == ["a", "b"]
    assert t.keys("STRALGO", ["LCS", "STRINGS", "x", "y"]) == []


def test_command_info_reply_with_nil() -> None:
    # COMMAND INFO answers nil for unknown names.
    entries = [e for e in RECORDED if e[0] in ("get", "mset")]
    t = CommandTable.from_command_reply([entries[0], None, entries[1]])
    assert set(t.commands) == {"get", "mset"}


def test_key_spec_positions() -> None:
    xread = KeySpec(begin_search="keyword", keyword=b"STREAMS", startfrom=1, lastkey=-1, limit=2)
    assert xread.positions(["STREAMS", "a", "b", "0", "0"]) == range(1, 3)
    assert xread.positions(["COUNT", "1", "streams", "a", "0"]) == range(3, 4)
    assert xread.positions(["COUNT", "1"]) is None
    # Searching backwards from the end (MIGRATE's KEYS).
    keys = KeySpec(begin_search="keyword", keyword=b"KEYS", startfrom=-2, lastkey=-1)
    assert keys.positions(["h", "p", "", "0", "1", "KEYS", "a", "b"]) == range(6, 8)
    keynum = KeySpec(index=2, find_keys="keynum", keynumidx=0, firstkey=1)
    assert keynum.positions(["d", "2", "a", "b"]) == range(2, 4)
    assert keynum.positions(["d", "x", "a", "b"]) is None
    assert keynum.positions(["d", "5", "a", "b"]) is None
    assert keynum.positions(["d", "0"]) is None
    assert keynum.positions(["d", b"02", "a", "b"]) is None  # not a number to the server
    assert keynum.positions(["d", 2.0, "a", "b"]) is None  # sent as "2.0"
    assert keynum.positions(["d", memoryview(b"1"), "a"]) == range(2, 3)
    # STREAMS searched backwards from the end finds the same keys.
    backwards = KeySpec(
        begin_search="keyword", keyword=b"STREAMS", startfrom=-1, lastkey=-1, limit=2
    )
    args = ["COUNT", "2", "STREAMS", "s1", "s2", "0", "0"]
    assert backwards.positions(args) == xread.positions(args) == range(3, 5)
    assert KeySpec(begin_search="unknown").positions(["a"]) is None


# -- properties ------------------------------------------------------------------

TABLE = CommandTable.from_command_reply(RECORDED)
BUILTIN = CommandTable.builtin()
names = st.binary(min_size=0, max_size=6)
tagged_names = st.builds(lambda k: b"{t}" + k, names)


def _check_slot(table: CommandTable, command: bytes, args: list[Any], keys: list[Any]) -> None:
    slots = {key_slot(k) for k in keys}
    if len(slots) > 1:
        with pytest.raises(CrossSlotError):
            table.slot(command, args)
    else:
        assert table.slot(command, args) == (slots.pop() if slots else None)


@settings(max_examples=200)
@given(
    st.sampled_from([b"MGET", b"DEL", b"UNLINK", b"EXISTS", b"TOUCH", b"SUNION", b"WATCH"]),
    st.lists(names | tagged_names, min_size=1, max_size=8),
)
def test_all_args_are_keys(command: bytes, keys: list[bytes]) -> None:
    for table in (TABLE, BUILTIN):
        assert table.keys(command, keys) == keys
        _check_slot(table, command, keys, keys)
        layout = table.multi_key_layout(command)
        if layout is not None:
            first, step = layout
            assert keys[first::step] == keys


@settings(max_examples=200)
@given(st.sampled_from([b"MSET", b"MSETNX"]), st.lists(st.tuples(names, names), min_size=1))
def test_every_other_arg_is_a_key(command: bytes, pairs: list[tuple[bytes, bytes]]) -> None:
    args = [x for pair in pairs for x in pair]
    keys = [k for k, _ in pairs]
    for table in (TABLE, BUILTIN):
        assert table.keys(command, args) == keys
        _check_slot(table, command, args, keys)


@settings(max_examples=200)
@given(
    st.sampled_from([b"EVAL", b"EVALSHA", b"FCALL", b"FCALL_RO"]),
    st.lists(names | tagged_names, max_size=5),
    st.lists(names, max_size=3),
)
def test_numkeys(command: bytes, keys: list[bytes], rest: list[bytes]) -> None:
    args: list[bytes | int] = [b"body", len(keys), *keys, *rest]
    for table in (TABLE, BUILTIN):
        assert table.keys(command, args) == keys
        _check_slot(table, command, args, keys)


@settings(max_examples=200)
@given(
    st.lists(names | tagged_names, min_size=1, max_size=5),
    st.lists(st.sampled_from([[b"COUNT", b"5"], [b"BLOCK", b"0"]]), max_size=2),
    st.booleans(),
)
def test_streams(keys: list[bytes], options: list[list[bytes]], group: bool) -> None:
    args = [x for option in options for x in option] + [b"STREAMS", *keys] + [b"0"] * len(keys)
    command = b"XREAD"
    if group:
        command, args = b"XREADGROUP", [b"GROUP", b"g", b"c", *args]
    for table in (TABLE, BUILTIN):
        assert table.keys(command, args) == keys


# -- the live server ---------------------------------------------------------------


def _decode(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.decode()
    if isinstance(obj, list):
        return [_decode(o) for o in obj]
    return obj


def _canonical(reply: Any) -> list[Any]:
    entries: list[Any] = _decode(reply)
    for entry in entries:
        entry[9].sort(key=lambda sub: sub[0])
    return sorted(entries, key=lambda e: e[0])


@pytest.fixture(scope="module")
def live_table(raw_redis_server: Any) -> CommandTable:
    return CommandTable.from_command_reply(raw_redis_server.execute("COMMAND"))


def test_live_reply_matches_recording(raw_redis_server: Any) -> None:
    if not raw_redis_server.version.startswith("7.0."):
        pytest.skip(f"recording is of 7.0, server is {raw_redis_server.version}")
    assert _canonical(raw_redis_server.execute("COMMAND")) == RECORDED


def _getkeys(server: Any, lines: list[list[Any]]) -> list[Any]:
    replies: list[Any] = server.execute_many([["COMMAND", "GETKEYS", *line] for line in lines])
    return replies


def test_live_getkeys_examples(raw_redis_server: Any, live_table: CommandTable) -> None:
    lines = [[cmd, *args] for cmd, args in (split(line) for line, _, _ in EXAMPLES)]
    for line, reply in zip(lines, _getkeys(raw_redis_server, lines), strict=True):
        mine = live_table.keys(line[0], line[1:], include_channels=False)
        if isinstance(reply, hiredis.ReplyError):
            # Keyless: "The command has no key arguments", or GETKEYS refusing
            # a bare command name ("wrong number of arguments").
            assert "no key arguments" in str(reply) or len(line) == 1, (line, reply)
            assert mine == [], line
        else:
            assert [k.decode() for k in reply] == mine, line


def test_live_getkeys_every_command(raw_redis_server: Any, live_table: CommandTable) -> None:
    """Each command (and subcommand) with plausible argument counts: where the
    server accepts the arguments, its keys are ours."""
    lines = []
    for info in live_table.commands.values():
        targets = [(info, [info.name])]
        targets += [(sub, sub.name.split("|")) for sub in info.subcommands.values()]
        for item, words in targets:
            if item.keyless:
                continue
            base = abs(item.arity) - len(words)
            for extra in (0, 1, 2, 3, 5) if item.arity < 0 else (0,):
                # Numbers where a numkeys is expected, names elsewhere.
                args = [str(i % 3 + 1) if i % 2 else f"k{i}" for i in range(base + extra)]
                lines.append([*words, *args])
    compared = 0
    for line, reply in zip(lines, _getkeys(raw_redis_server, lines), strict=True):
        if isinstance(reply, hiredis.ReplyError):
            continue
        compared += 1
        assert [k.decode() for k in reply] == live_table.keys(
            line[0], line[1:], include_channels=False
        ), line
    assert compared > 200


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.lists(names, min_size=1, max_size=6).map(lambda ks: [b"MGET", *ks]),
            st.lists(names, min_size=1, max_size=6).map(
                lambda ks: [b"MSET", *[x for k in ks for x in (k, b"v")]]
            ),
            st.lists(names, max_size=4).map(lambda ks: [b"EVAL", b"s", len(ks), *ks, b"a"]),
            st.lists(names, min_size=1, max_size=4).map(
                lambda ks: [b"ZUNIONSTORE", b"d", len(ks), *ks, b"WEIGHTS", *[b"1"] * len(ks)]
            ),
            st.lists(names, min_size=1, max_size=4).map(
                lambda ks: [b"XREAD", b"COUNT", b"1", b"STREAMS", *ks, *[b"0"] * len(ks)]
            ),
            st.lists(names, min_size=1, max_size=4).map(
                lambda ks: [b"BLMPOP", b"0", len(ks), *ks, b"LEFT"]
            ),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_live_getkeys_generated(
    raw_redis_server: Any, live_table: CommandTable, lines: list[list[Any]]
) -> None:
    for line, reply in zip(lines, _getkeys(raw_redis_server, lines), strict=True):
        assert not isinstance(reply, hiredis.ReplyError), (line, reply)
        assert reply == live_table.keys(line[0], line[1:]), line


@pytest.mark.parametrize(
    "reply", [b"OK", 7, [b"get"], [[b"get", b"x"]], [[b"get", 2, [b"readonly"], 1, 1]], [3]]
)
def test_malformed_command_reply_is_a_protocol_error(reply: Any) -> None:
    # A hostile or broken node's COMMAND reply never escapes as TypeError/IndexError.
    with pytest.raises(ProtocolError, match="malformed COMMAND reply"):
        CommandTable.from_command_reply(reply)
