"""Command metadata for cluster routing: which arguments are keys, and what a command is.

The table is built from the server's own ``COMMAND`` reply
(:meth:`CommandTable.from_command_reply`), not from a hand-written list. Each
reply entry is ``[name, arity, flags, first_key, last_key, step]`` followed, on
Redis 6, by ``acl_categories`` and, on Redis 7+, by ``tips``, ``key_specs`` and
``subcommands``.

Key positions come from, in order of preference:

1. a small procedural override for the two commands whose key specs cannot
   describe them (``SORT ... STORE dest`` and ``MIGRATE ... KEYS k1 k2``);
2. the Redis 7 *key specs* (``begin_search`` index/keyword, ``find_keys``
   range/keynum), interpreted the way the server does;
3. for entries without key specs (Redis 6, :meth:`CommandTable.builtin`),
   canned key specs of the well-known movable-keys commands (EVAL, XREAD, ...);
4. the legacy ``first_key``/``last_key``/``step`` triple.

Arguments are passed *without* the command name: for ``GET foo`` the command is
``b"GET"`` and the args are ``(b"foo",)``. Sharded pub/sub channels (SPUBLISH,
SSUBSCRIBE, SUNSUBSCRIBE) are not keys for the server, but they are routed by
slot: :meth:`CommandTable.slot` and :meth:`CommandTable.first_key` treat them as
keys, :meth:`CommandTable.keys` does unless ``include_channels=False``.

Request/response policies (:attr:`CommandInfo.request_policy`,
:attr:`CommandInfo.response_policy`) come from the Redis 7 ``tips``:

* request ``all_shards``: send to every master (FLUSHALL, DBSIZE, KEYS,
  SCRIPT KILL, FUNCTION LOAD, PING, ...); ``all_nodes``: every node, replicas
  included (SCRIPT LOAD, SCRIPT FLUSH, CONFIG SET); ``multi_shard``: split by
  key slot (MGET, DEL, ... -- see :meth:`CommandTable.multi_key_layout`);
  ``special``: needs client-side logic (SCAN); ``None``: route by key, or to
  any node when keyless.
* response ``one_succeeded``, ``all_succeeded``, ``agg_logical_and``,
  ``agg_logical_or``, ``agg_min``, ``agg_max``, ``agg_sum``, ``special``;
  ``None`` with ``all_shards`` means "concatenate the arrays" (KEYS), with
  ``multi_shard`` "reassemble in key order" (MGET).

For a Redis 6 reply (no tips), policies and subcommands of commands known to
the builtin table are taken from it.
"""

from __future__ import annotations

import contextlib
from binascii import crc_hqx
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from .errors import CrossSlotError, ProtocolError
from .protocol import to_text
from .slots import SLOT_COUNT, KeyT, key_slot

__all__ = [
    "SPLITTABLE_COMMANDS",
    "ArgsT",
    "CommandInfo",
    "CommandTable",
    "KeySpec",
]

ArgsT: TypeAlias = Sequence[KeyT]
"""Command arguments, without the command name."""

SPLITTABLE_COMMANDS: Final = frozenset({"mget", "mset", "del", "unlink", "exists", "touch"})
"""Multi-key commands that may be split per slot and their replies merged.

MSETNX is deliberately absent although the server tags it ``multi_shard``:
it is all-or-nothing, splitting it would break that.
"""

_SlotFn: TypeAlias = Callable[[ArgsT], "int | None"]
_FirstFn: TypeAlias = Callable[[ArgsT], "KeyT | None"]
_KeysFn: TypeAlias = Callable[[ArgsT], "list[KeyT]"]

_MASK = SLOT_COUNT - 1
_CACHE_LIMIT = 4096  # distinct spellings of command names remembered per table
_CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"


# -- small helpers -------------------------------------------------------------


def _upper_bytes(arg: Any) -> bytes | None:
    """``arg`` as ASCII-upper-cased wire bytes (like the server's strcasecmp)."""
    if type(arg) is bytes:
        return arg.upper()
    if isinstance(arg, str):
        return arg.encode("utf-8", "surrogateescape").upper()
    if isinstance(arg, bytes | bytearray | memoryview):
        return bytes(arg).upper()
    return None


def _norm_name(name: Any) -> str | None:
    """Lower-case command name as the server would match it, or None."""
    raw = _upper_bytes(name)
    return None if raw is None else raw.lower().decode("latin-1")


def _as_int(arg: Any) -> int | None:
    """A non-negative count argument (numkeys) as the server parses it, or None."""
    if isinstance(arg, int) and not isinstance(arg, bool):
        return arg
    if isinstance(arg, str):
        arg = arg.encode()
    elif isinstance(arg, bytearray | memoryview):
        arg = bytes(arg)
    elif not isinstance(arg, bytes):
        return None  # a float goes out as "2.0": not an integer for the server
    # ASCII digits without a leading zero, like the server's string2ll().
    if not arg.isdigit() or (arg[0] == 0x30 and len(arg) > 1):
        return None
    return int(arg)


def _pairs(raw: Any) -> dict[str, Any]:
    """A RESP2 flat ``[k, v, k, v]`` array or a RESP3 map, as a str-keyed dict."""
    if isinstance(raw, Mapping):
        return {to_text(k): v for k, v in raw.items()}
    if isinstance(raw, list | tuple):
        return {to_text(raw[i]): raw[i + 1] for i in range(0, len(raw) - 1, 2)}
    return {}


def _cross_slot(name: str) -> CrossSlotError:
    return CrossSlotError(f"{_CROSSSLOT} ({name.upper()})")


# -- key specs -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One Redis 7 key specification.

    Its fields use argv indices (0 is the command name), as the server does;
    :meth:`positions` answers with indices into ``args`` (name excluded).

    ``begin_search`` is ``"index"`` (start at ``index``), ``"keyword"`` (start
    after ``keyword``, searched from ``startfrom``; backwards when negative) or
    ``"unknown"``. ``find_keys`` is ``"range"`` (``lastkey`` relative to the
    start, negative counts from the end; ``limit`` > 1 takes ``1/limit`` of the
    remaining args) or ``"keynum"`` (count at ``keynumidx``, keys from
    ``firstkey``) or ``"unknown"``; keys are every ``keystep``-th argument.
    """

    flags: frozenset[str] = frozenset()
    begin_search: str = "index"
    index: int = 0
    keyword: bytes = b""
    startfrom: int = 0
    find_keys: str = "range"
    lastkey: int = 0
    keystep: int = 1
    limit: int = 0
    keynumidx: int = 0
    firstkey: int = 1

    @classmethod
    def from_reply(cls, raw: Any) -> KeySpec:
        """Parse one ``key_specs`` item of a COMMAND reply (RESP2 or RESP3 form)."""
        spec = _pairs(raw)
        flags = frozenset(to_text(f) for f in spec.get("flags") or ())
        bs = _pairs(spec.get("begin_search"))
        fk = _pairs(spec.get("find_keys"))
        bs_type = to_text(bs.get("type", "unknown"))
        fk_type = to_text(fk.get("type", "unknown"))
        bs_spec = _pairs(bs.get("spec"))
        fk_spec = _pairs(fk.get("spec"))
        keyword = bs_spec.get("keyword", b"")
        return cls(
            flags=flags,
            begin_search=bs_type if bs_type in ("index", "keyword") else "unknown",
            index=int(bs_spec.get("index", 0)),
            keyword=(keyword if isinstance(keyword, bytes) else to_text(keyword).encode()).upper(),
            startfrom=int(bs_spec.get("startfrom", 0)),
            find_keys=fk_type if fk_type in ("range", "keynum") else "unknown",
            lastkey=int(fk_spec.get("lastkey", 0)),
            keystep=int(fk_spec.get("keystep", 1)),
            limit=int(fk_spec.get("limit", 0)),
            keynumidx=int(fk_spec.get("keynumidx", 0)),
            firstkey=int(fk_spec.get("firstkey", 1)),
        )

    @property
    def not_key(self) -> bool:
        """The arguments are not keys but are routed like keys (sharded channels)."""
        return "not_key" in self.flags

    @property
    def usable(self) -> bool:
        """Whether positions can be computed from this spec at all."""
        return self.begin_search != "unknown" and self.find_keys != "unknown"

    def positions(self, args: ArgsT) -> range | None:
        """Indices into ``args`` (command name excluded) of this spec's keys.

        ``None`` when the arguments do not match the spec (the server would
        answer with a syntax or arity error).
        """
        argc = len(args) + 1
        begin = self.begin_search
        if begin == "index":
            first = self.index
        elif begin == "keyword":
            first = self._search_keyword(args, argc)
        else:
            return None
        if first <= 0:
            return None
        find = self.find_keys
        if find == "range":
            lastkey = self.lastkey
            if lastkey >= 0:
                last = first + lastkey
            elif self.limit <= 1:
                last = argc + lastkey
            else:
                last = first + (argc - first) // self.limit + lastkey
        elif find == "keynum":
            keynumidx = self.keynumidx
            if keynumidx >= argc - first:
                return None
            numkeys = _as_int(args[first + keynumidx - 1])
            if numkeys is None or numkeys < 0:
                return None
            first += self.firstkey
            last = first + numkeys - 1
        else:
            return None
        if last >= argc or last < first:
            return None
        step = self.keystep
        return range(first - 1, last, step if step > 0 else 1)

    def _search_keyword(self, args: ArgsT, argc: int) -> int:
        # The server searches argv[startfrom .. argc-2] forwards, or, for a
        # negative startfrom, argv[argc+startfrom .. 1] backwards.
        if self.startfrom > 0:
            indices = range(self.startfrom, argc - 1)
        else:
            start = argc + self.startfrom
            if start >= argc:
                return 0
            indices = range(start, 0, -1)
        keyword = self.keyword
        for i in indices:
            if _upper_bytes(args[i - 1]) == keyword:
                return i + 1
        return 0


def _legacy_spec(first: int, last: int, step: int) -> KeySpec:
    """The key spec equivalent to a pre-7 ``first_key, last_key, step`` triple."""
    # Legacy last_key is absolute when >= 0; key specs make it relative to first.
    return KeySpec(index=first, lastkey=last - first if last >= 0 else last, keystep=step or 1)


def _keynum(index: int) -> KeySpec:
    return KeySpec(index=index, find_keys="keynum", keynumidx=0, firstkey=1)


def _keyword(word: bytes, startfrom: int, lastkey: int = 0, limit: int = 0) -> KeySpec:
    return KeySpec(
        begin_search="keyword", keyword=word, startfrom=startfrom, lastkey=lastkey, limit=limit
    )


_CHANNEL = frozenset({"not_key"})

# Key specs of movable-keys commands, for tables that carry no key specs
# (Redis 6 replies and the builtin table). Equal to what Redis 7.0 reports.
_CANNED_SPECS: Final[dict[str, tuple[KeySpec, ...]]] = {
    **{
        name: (_keynum(2),)
        for name in ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")
    },
    **{
        name: (KeySpec(index=1), _keynum(2))
        for name in ("zunionstore", "zinterstore", "zdiffstore")
    },
    **{
        name: (_keynum(1),)
        for name in ("zunion", "zinter", "zdiff", "zintercard", "sintercard", "lmpop", "zmpop")
    },
    **{name: (_keynum(2),) for name in ("blmpop", "bzmpop")},
    "xread": (_keyword(b"STREAMS", 1, -1, 2),),
    "xreadgroup": (_keyword(b"STREAMS", 4, -1, 2),),
    "georadius": (KeySpec(index=1), _keyword(b"STORE", 6), _keyword(b"STOREDIST", 6)),
    "georadiusbymember": (KeySpec(index=1), _keyword(b"STORE", 5), _keyword(b"STOREDIST", 5)),
    "stralgo": (_keyword(b"KEYS", 2, 1),),  # Redis 6 only: STRALGO LCS KEYS k1 k2
    "spublish": (KeySpec(flags=_CHANNEL, index=1),),
    "ssubscribe": (KeySpec(flags=_CHANNEL, index=1, lastkey=-1),),
    "sunsubscribe": (KeySpec(flags=_CHANNEL, index=1, lastkey=-1),),
}


# -- procedural overrides ------------------------------------------------------


def _sort_keys(args: ArgsT) -> list[KeyT]:
    """SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dest]."""
    if not args:
        return []
    store: KeyT | None = None
    i, n = 1, len(args)
    while i < n:
        word = _upper_bytes(args[i])
        if word == b"LIMIT":
            i += 2
        elif word in (b"BY", b"GET"):
            i += 1
        elif word == b"STORE" and i + 1 < n:
            store = args[i + 1]  # the last STORE wins, as in the server
        i += 1
    return [args[0]] if store is None else [args[0], store]


def _migrate_keys(args: ArgsT) -> list[KeyT]:
    """MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw] [AUTH2 u pw] [KEYS k...]."""
    if len(args) < 5:
        return []
    key = args[2]
    if key in (b"", ""):
        skips = {b"AUTH": 1, b"AUTH2": 2}
        i = 5
        while i < len(args):
            word = _upper_bytes(args[i])
            if word == b"KEYS":
                return list(args[i + 1 :])
            i += 1 + skips.get(word or b"", 0)
    return [key]


_PROCS: Final[dict[str, _KeysFn]] = {"sort": _sort_keys, "migrate": _migrate_keys}


# -- compiled extractors -------------------------------------------------------
#
# Every CommandInfo carries three closures specialised for its key layout, so
# the hot path is a dict lookup plus one call, with no per-call allocation for
# single-key commands.


def _no_slot(args: ArgsT) -> int | None:
    return None


def _no_first(args: ArgsT) -> KeyT | None:
    return None


def _no_keys(args: ArgsT) -> list[KeyT]:
    return []


def _slot_of_keys(keys: Iterable[KeyT], name: str) -> int | None:
    slot = -1
    for key in keys:
        this = key_slot(key)
        if this != slot:
            if slot >= 0:
                raise _cross_slot(name)
            slot = this
    return None if slot < 0 else slot


def _single(i: int) -> tuple[_SlotFn, _FirstFn, _KeysFn]:
    # The bytes-without-"{" case of key_slot is inlined: it is most calls.
    if i == 0:

        def slot0(args: ArgsT) -> int | None:
            if args:
                key = args[0]
                if type(key) is bytes and 0x7B not in key:
                    return crc_hqx(key, 0) & _MASK
                return key_slot(key)
            return None

        def first0(args: ArgsT) -> KeyT | None:
            return args[0] if args else None

        def keys0(args: ArgsT) -> list[KeyT]:
            return [args[0]] if args else []

        return slot0, first0, keys0

    def slot(args: ArgsT) -> int | None:
        if len(args) > i:
            key = args[i]
            if type(key) is bytes and 0x7B not in key:
                return crc_hqx(key, 0) & _MASK
            return key_slot(key)
        return None

    def first(args: ArgsT) -> KeyT | None:
        return args[i] if len(args) > i else None

    def keys(args: ArgsT) -> list[KeyT]:
        return [args[i]] if len(args) > i else []

    return slot, first, keys


def _static_range(
    first: int, lastkey: int, step: int, name: str
) -> tuple[_SlotFn, _FirstFn, _KeysFn]:
    """Keys at args[first], args[first+step], ... up to a last index that is
    ``first + lastkey`` or, when ``lastkey`` < 0, counted from the end."""

    def bounds(n: int) -> int:
        last = first + lastkey if lastkey >= 0 else n + lastkey
        return last if first <= last < n else -1

    def slot(args: ArgsT) -> int | None:
        n = len(args)
        last = first + lastkey if lastkey >= 0 else n + lastkey
        if last < first or last >= n:
            return None
        result = -1
        for j in range(first, last + 1, step):
            key = args[j]
            if type(key) is bytes and 0x7B not in key:
                this = crc_hqx(key, 0) & _MASK
            else:
                this = key_slot(key)
            if this != result:
                if result >= 0:
                    raise _cross_slot(name)
                result = this
        return result

    def first_key(args: ArgsT) -> KeyT | None:
        return args[first] if bounds(len(args)) >= 0 else None

    def keys(args: ArgsT) -> list[KeyT]:
        last = bounds(len(args))
        return [args[j] for j in range(first, last + 1, step)] if last >= 0 else []

    return slot, first_key, keys


def _generic(keys: _KeysFn, name: str) -> tuple[_SlotFn, _FirstFn, _KeysFn]:
    def slot(args: ArgsT) -> int | None:
        return _slot_of_keys(keys(args), name)

    def first(args: ArgsT) -> KeyT | None:
        found = keys(args)
        return found[0] if found else None

    return slot, first, keys


def _specs_keys(specs: tuple[KeySpec, ...]) -> _KeysFn:
    if len(specs) == 1:
        positions = specs[0].positions

        def keys1(args: ArgsT) -> list[KeyT]:
            found = positions(args)
            return [] if found is None else list(args[found.start : found.stop : found.step])

        return keys1

    def keys(args: ArgsT) -> list[KeyT]:
        found: list[KeyT] = []
        for spec in specs:
            where = spec.positions(args)
            if where is not None:
                found.extend(args[where.start : where.stop : where.step])
        return found

    return keys


def _compile(
    name: str, specs: tuple[KeySpec, ...], proc: _KeysFn | None
) -> tuple[_SlotFn, _FirstFn, _KeysFn]:
    if proc is not None:
        return _generic(proc, name)
    specs = tuple(s for s in specs if s.usable)
    if not specs:
        return _no_slot, _no_first, _no_keys
    if len(specs) == 1:
        spec = specs[0]
        if spec.begin_search == "index" and spec.find_keys == "range" and spec.limit <= 1:
            if spec.lastkey == 0:
                return _single(spec.index - 1)
            return _static_range(spec.index - 1, spec.lastkey, max(spec.keystep, 1), name)
    return _generic(_specs_keys(specs), name)


# -- command info --------------------------------------------------------------


class CommandInfo:
    """What the server says about one command (or one ``container|subcommand``)."""

    __slots__ = (
        "_first_fn",
        "_keys_fn",
        "_layout",
        "_routing_keys_fn",
        "_slot_fn",
        "_sub_cache",
        "acl_categories",
        "admin",
        "arity",
        "first_key",
        "flags",
        "is_blocking",
        "key_specs",
        "keyless",
        "last_key",
        "movablekeys",
        "name",
        "noscript",
        "pubsub",
        "readonly",
        "request_policy",
        "response_policy",
        "shard_channel",
        "slot_of",
        "step",
        "subcommands",
        "tips",
        "write",
    )

    name: str
    """Lower-case name; ``"container|sub"`` for a subcommand (``"object|encoding"``)."""
    arity: int
    """Argument count including the command (and subcommand) name; negative = at least."""
    flags: frozenset[str]
    first_key: int
    last_key: int
    step: int
    acl_categories: frozenset[str]
    tips: frozenset[str]
    key_specs: tuple[KeySpec, ...]
    """The key specs used for extraction (server's, canned, or legacy-derived)."""
    subcommands: dict[str, CommandInfo]
    """Subcommands by lower-case name without the container prefix (``"encoding"``)."""
    readonly: bool
    """Safe for a replica: flag ``readonly`` and not ``write``."""
    write: bool
    movablekeys: bool
    is_blocking: bool
    pubsub: bool
    noscript: bool
    admin: bool
    shard_channel: bool
    """Arguments include sharded pub/sub channels, routed by slot (SPUBLISH, SSUBSCRIBE)."""
    keyless: bool
    """No argument can ever be a key or shard channel (this command nor subcommands)."""
    request_policy: str | None
    """``"all_shards"``, ``"all_nodes"``, ``"multi_shard"``, ``"special"`` or None."""
    response_policy: str | None
    """``"agg_sum"``, ``"all_succeeded"``, ... (see the module docstring) or None."""
    slot_of: _SlotFn
    """``slot_of(args)``: the one slot of the call's keys (None if keyless);
    raises CrossSlotError across slots. A plain function: no lookup, no binding."""

    def __init__(
        self,
        name: str,
        arity: int,
        flags: Iterable[str],
        first_key: int = 0,
        last_key: int = 0,
        step: int = 0,
        acl_categories: Iterable[str] = (),
        tips: Iterable[str] = (),
        key_specs: Iterable[KeySpec] | None = None,
        subcommands: Iterable[CommandInfo] = (),
    ) -> None:
        self.name = name = name.lower()
        self.arity = arity
        self.flags = flags = frozenset(flags)
        self.first_key = first_key
        self.last_key = last_key
        self.step = step
        self.acl_categories = frozenset(acl_categories)
        self.tips = tips = frozenset(tips)
        self.write = "write" in flags
        self.readonly = "readonly" in flags and not self.write
        self.movablekeys = "movablekeys" in flags
        self.is_blocking = "blocking" in flags
        self.pubsub = "pubsub" in flags
        self.noscript = "noscript" in flags
        self.admin = "admin" in flags
        self.request_policy = self.response_policy = None
        for tip in tips:
            kind, _, value = tip.partition(":")
            if kind == "request_policy":
                self.request_policy = value
            elif kind == "response_policy":
                self.response_policy = value

        specs = tuple(key_specs or ())
        if not specs:
            specs = _CANNED_SPECS.get(name, ())
        if not specs and first_key > 0:
            specs = (_legacy_spec(first_key, last_key, step),)
        self.key_specs = specs
        self.shard_channel = any(s.not_key for s in specs)
        proc = _PROCS.get(name)
        key_only = tuple(s for s in specs if not s.not_key)
        self._slot_fn, self._first_fn, self._routing_keys_fn = _compile(name, specs, proc)
        self.slot_of = self._slot_fn
        self._keys_fn = (
            self._routing_keys_fn
            if len(key_only) == len(specs)
            else _compile(name, key_only, proc)[2]
        )
        self._layout: tuple[int, int] | None = None
        if len(specs) == 1 and proc is None:
            spec = specs[0]
            if (
                spec.begin_search == "index"
                and spec.find_keys == "range"
                and spec.lastkey == -1
                and spec.limit <= 1
            ):
                self._layout = (spec.index - 1, max(spec.keystep, 1))

        self.subcommands = {}
        self._sub_cache: dict[Any, CommandInfo] = {}
        for sub in subcommands:
            short = sub.name.partition("|")[2] or sub.name
            self.subcommands[short] = sub
            for form in (short.lower(), short.upper()):
                self._sub_cache[form] = self._sub_cache[form.encode()] = sub
        self.keyless = (
            not specs and proc is None and all(s.keyless for s in self.subcommands.values())
        )
        if self.subcommands:
            self._make_container()

    def _make_container(self) -> None:
        own_slot, own_first = self._slot_fn, self._first_fn
        own_keys, own_routing = self._keys_fn, self._routing_keys_fn
        lookup = self.subcommand

        def slot(args: ArgsT) -> int | None:
            sub = lookup(args[0]) if args else None
            return own_slot(args) if sub is None else sub._slot_fn(args)

        def first(args: ArgsT) -> KeyT | None:
            sub = lookup(args[0]) if args else None
            return own_first(args) if sub is None else sub._first_fn(args)

        def keys(args: ArgsT) -> list[KeyT]:
            sub = lookup(args[0]) if args else None
            return own_keys(args) if sub is None else sub._keys_fn(args)

        def routing(args: ArgsT) -> list[KeyT]:
            sub = lookup(args[0]) if args else None
            return own_routing(args) if sub is None else sub._routing_keys_fn(args)

        self._slot_fn, self._first_fn = slot, first
        self.slot_of = slot
        self._keys_fn, self._routing_keys_fn = keys, routing

    def keys_of(self, args: ArgsT) -> list[KeyT]:
        """The call's keys (shard channels excluded), in the server's order."""
        return self._keys_fn(args)

    def split_layout(self) -> tuple[int, int] | None:
        """``(first, step)`` of a command that may be split per slot (see
        :meth:`CommandTable.multi_key_layout`), else None."""
        return self._layout if self.name in SPLITTABLE_COMMANDS else None

    def subcommand(self, name: Any) -> CommandInfo | None:
        """The subcommand called ``name`` (any case, bytes or str), or None."""
        try:
            return self._sub_cache[name]
        except (KeyError, TypeError):
            pass
        norm = _norm_name(name)
        return None if norm is None else self.subcommands.get(norm)

    @classmethod
    def from_reply(cls, entry: Sequence[Any]) -> CommandInfo:
        """Build from one entry of a ``COMMAND`` / ``COMMAND INFO`` reply."""
        name = to_text(entry[0]).lower()
        subs = entry[9] if len(entry) > 9 and entry[9] else ()
        return cls(
            name=name,
            arity=int(entry[1]),
            flags=(to_text(f).lower() for f in entry[2] or ()),
            first_key=int(entry[3]),
            last_key=int(entry[4]),
            step=int(entry[5]),
            acl_categories=(to_text(c) for c in entry[6] or ()) if len(entry) > 6 else (),
            tips=(to_text(t) for t in (entry[7] or ())) if len(entry) > 7 else (),
            key_specs=[KeySpec.from_reply(s) for s in entry[8] or ()] if len(entry) > 8 else (),
            subcommands=[cls.from_reply(s) for s in subs if s],
        )

    def __repr__(self) -> str:
        return f"<CommandInfo {self.name} arity={self.arity} flags={sorted(self.flags)}>"


def _unknown() -> CommandInfo:
    # Stands for any command the table does not know: its first argument is
    # taken as the key (right for nearly every data command; a keyless unknown
    # command is then sent to the node of an arbitrary slot, which is harmless).
    return CommandInfo("", -1, (), 1, 1, 1)


# -- the table -----------------------------------------------------------------


class CommandTable:
    """Command metadata of one server (or of the builtin bootstrap table).

    Lookups take the command as the caller passed it (``b"GET"``, ``"get"``,
    ...) and are cached per spelling; ``args`` never include the command name.
    """

    __slots__ = ("_infos", "_slot_fns", "_unknown", "commands")

    commands: dict[str, CommandInfo]
    """Top-level commands by lower-case name."""

    def __init__(self, commands: Iterable[CommandInfo]) -> None:
        self.commands = {info.name: info for info in commands}
        self._unknown = _unknown()
        # Keyed by the command as callers pass it (bytes or str, lower or upper
        # case); slot() has its own dict to save an attribute lookup per call.
        self._infos: dict[Any, CommandInfo] = {}
        self._slot_fns: dict[Any, _SlotFn] = {}
        for name, info in self.commands.items():
            for form in (name, name.upper(), name.encode(), name.upper().encode()):
                self._infos[form] = info
                self._slot_fns[form] = info._slot_fn

    @classmethod
    def from_command_reply(cls, reply: Iterable[Any]) -> CommandTable:
        """Build from a ``COMMAND`` reply (hiredis-parsed: bytes or str, RESP2 or RESP3).

        Entries without tips (Redis 6) get policies and subcommands from the
        builtin table for the commands it knows. A reply of another shape (a
        broken or hostile node) raises :class:`~clustermgr.errors.ProtocolError`.
        """
        if not isinstance(reply, (list, tuple)):
            raise ProtocolError(f"malformed COMMAND reply: a {type(reply).__name__}, not a list")
        try:
            return cls._from_entries(reply)
        except (TypeError, ValueError, IndexError, AttributeError, KeyError) as exc:
            raise ProtocolError(f"malformed COMMAND reply: {exc}") from None

    @classmethod
    def _from_entries(cls, reply: Iterable[Any]) -> CommandTable:
        builtin = _builtin_table()
        infos = []
        for entry in reply:
            if not entry:
                continue  # COMMAND INFO answers nil for unknown names
            if not isinstance(entry, (list, tuple)):
                raise TypeError(f"an entry is a {type(entry).__name__}, not a list")
            info = CommandInfo.from_reply(entry)
            known = builtin.commands.get(info.name) if len(entry) < 8 else None
            if known is not None:
                info = CommandInfo(
                    info.name,
                    info.arity,
                    info.flags,
                    info.first_key,
                    info.last_key,
                    info.step,
                    info.acl_categories,
                    known.tips,
                    None,
                    info.subcommands.values() or known.subcommands.values(),
                )
            infos.append(info)
        return cls(infos)

    @classmethod
    def builtin(cls) -> CommandTable:
        """A bootstrap table of 158 commands (+28 subcommands) recorded from Redis 7.0.

        Used until the server's own ``COMMAND`` reply is fetched. It has no key
        specs: movable-keys commands use canned specs, the rest the legacy
        triple. Commands it does not know take their first argument as the key.
        """
        return _builtin_table()

    # -- lookups ---------------------------------------------------------------

    def _resolve(self, command: bytes | str) -> CommandInfo:
        """Slow path of the per-spelling cache (unseen spelling or unknown name)."""
        norm = _norm_name(command)
        info = self.commands.get(norm) if norm is not None else None
        if info is None:
            info = self._unknown
        if len(self._infos) < _CACHE_LIMIT:
            with contextlib.suppress(TypeError):  # unhashable (bytearray)
                self._infos[command] = info
                self._slot_fns[command] = info._slot_fn
        return info

    def lookup(self, command: bytes | str) -> CommandInfo:
        """Info on ``command``; for unknown names an info with an empty ``name``
        whose first argument is the key (never None: one dict lookup)."""
        try:
            return self._infos[command]
        except (KeyError, TypeError):  # TypeError: unhashable, e.g. bytearray
            return self._resolve(command)

    def info(self, command: bytes | str, args: ArgsT = ()) -> CommandInfo | None:
        """Info on ``command`` (on its subcommand ``args[0]`` for containers), or None."""
        try:
            info = self._infos[command]
        except (KeyError, TypeError):  # TypeError: unhashable, e.g. bytearray
            info = self._resolve(command)
        if info is self._unknown:
            return None
        if info.subcommands and args:
            sub = info.subcommand(args[0])
            if sub is not None:
                return sub
        return info

    def slot(self, command: bytes | str, args: ArgsT) -> int | None:
        """The one slot of all keys (and shard channels) of the call; None if keyless.

        Raises :class:`~clustermgr.errors.CrossSlotError` when the keys hash
        to several slots. Unknown commands use ``args[0]`` as their key.
        """
        try:
            fn = self._slot_fns[command]
        except (KeyError, TypeError):
            fn = self._resolve(command)._slot_fn
        return fn(args)

    def first_key(self, command: bytes | str, args: ArgsT) -> KeyT | None:
        """The first key (or shard channel) of the call, or None; no cross-slot check."""
        try:
            info = self._infos[command]
        except (KeyError, TypeError):  # TypeError: unhashable, e.g. bytearray
            info = self._resolve(command)
        return info._first_fn(args)

    def keys(
        self, command: bytes | str, args: ArgsT, *, include_channels: bool = True
    ) -> list[KeyT]:
        """All keys of the call, in the server's order (that of ``COMMAND GETKEYS``).

        Sharded pub/sub channels are included unless ``include_channels`` is
        false. Unknown commands: ``[args[0]]`` if there are arguments.
        """
        try:
            info = self._infos[command]
        except (KeyError, TypeError):  # TypeError: unhashable, e.g. bytearray
            info = self._resolve(command)
        return info._routing_keys_fn(args) if include_channels else info._keys_fn(args)

    def multi_key_layout(self, command: bytes | str) -> tuple[int, int] | None:
        """``(first, step)`` args indices of a command that may be split per slot.

        Only for :data:`SPLITTABLE_COMMANDS` (MGET, MSET, DEL, UNLINK, EXISTS,
        TOUCH): keys are ``args[first::step]`` and, for MSET, each key's value
        follows it. None for every other command (MSETNX included: atomic).
        """
        info = self.info(command)
        return None if info is None else info.split_layout()

    def by_request_policy(self, policy: str) -> frozenset[str]:
        """Names (``"cmd"`` or ``"cmd|sub"``) whose tips give ``request_policy:<policy>``."""
        found = set()
        for info in self.commands.values():
            for item in (info, *info.subcommands.values()):
                if item.request_policy == policy:
                    found.add(item.name)
        return frozenset(found)

    def __contains__(self, command: object) -> bool:
        return _norm_name(command) in self.commands

    def __len__(self) -> int:
        return len(self.commands)


# -- builtin table -------------------------------------------------------------

# Recorded from redis-server 7.0.15 ``COMMAND``: name arity flags first last step
# [policy tips; "req:"/"resp:" stand for "request_policy:"/"response_policy:"].
# Only commands whose routing differs from "args[0] is the one key", plus the
# common read-only ones (replica reads) and the keyless ones; subcommands only
# where they carry keys or policies.
_BUILTIN_ROWS = """
get 2 readonly,fast 1 1 1
set -3 write,denyoom 1 1 1
mget -2 readonly,fast 1 -1 1 req:multi_shard
mset -3 write,denyoom 1 -1 2 req:multi_shard,resp:all_succeeded
msetnx -3 write,denyoom 1 -1 2 req:multi_shard,resp:agg_min
strlen 2 readonly,fast 1 1 1
getrange 4 readonly 1 1 1
substr 4 readonly 1 1 1
del -2 write 1 -1 1 req:multi_shard,resp:agg_sum
unlink -2 write,fast 1 -1 1 req:multi_shard,resp:agg_sum
exists -2 readonly,fast 1 -1 1 req:multi_shard,resp:agg_sum
touch -2 readonly,fast 1 -1 1 req:multi_shard,resp:agg_sum
ttl 2 readonly,fast 1 1 1
pttl 2 readonly,fast 1 1 1
type 2 readonly,fast 1 1 1
rename 3 write 1 2 1
renamenx 3 write,fast 1 2 1
copy -3 write,denyoom 1 2 1
dump 2 readonly 1 1 1
migrate -6 write,movablekeys 3 3 1
object -2 - 0 0 0
object|encoding 3 readonly 2 2 1
object|freq 3 readonly 2 2 1
object|idletime 3 readonly 2 2 1
object|refcount 3 readonly 2 2 1
memory -2 - 0 0 0
memory|doctor 2 - 0 0 0 req:all_shards,resp:special
memory|malloc-stats 2 - 0 0 0 req:all_shards,resp:special
memory|purge 2 - 0 0 0 req:all_shards,resp:all_succeeded
memory|stats 2 - 0 0 0 req:all_shards,resp:special
memory|usage -3 readonly 2 2 1
sort -2 write,denyoom,movablekeys 1 1 1
sort_ro -2 readonly,movablekeys 1 1 1
hget 3 readonly,fast 1 1 1
hmget -3 readonly,fast 1 1 1
hgetall 2 readonly 1 1 1
hexists 3 readonly,fast 1 1 1
hkeys 2 readonly 1 1 1
hvals 2 readonly 1 1 1
hlen 2 readonly,fast 1 1 1
hstrlen 3 readonly,fast 1 1 1
hrandfield -2 readonly 1 1 1
hscan -3 readonly 1 1 1
llen 2 readonly,fast 1 1 1
lrange 4 readonly 1 1 1
lindex 3 readonly 1 1 1
lpos -3 readonly 1 1 1
blpop -3 write,noscript,blocking 1 -2 1
brpop -3 write,noscript,blocking 1 -2 1
lmove 5 write,denyoom 1 2 1
blmove 6 write,denyoom,noscript,blocking 1 2 1
lmpop -4 write,movablekeys 0 0 0
blmpop -5 write,blocking,movablekeys 0 0 0
rpoplpush 3 write,denyoom 1 2 1
brpoplpush 4 write,denyoom,noscript,blocking 1 2 1
smembers 2 readonly 1 1 1
sismember 3 readonly,fast 1 1 1
smismember -3 readonly,fast 1 1 1
scard 2 readonly,fast 1 1 1
srandmember -2 readonly 1 1 1
sscan -3 readonly 1 1 1
smove 4 write,fast 1 2 1
sunion -2 readonly 1 -1 1
sinter -2 readonly 1 -1 1
sdiff -2 readonly 1 -1 1
sunionstore -3 write,denyoom 1 -1 1
sinterstore -3 write,denyoom 1 -1 1
sdiffstore -3 write,denyoom 1 -1 1
sintercard -3 readonly,movablekeys 0 0 0
zscore 3 readonly,fast 1 1 1
zmscore -3 readonly,fast 1 1 1
zcard 2 readonly,fast 1 1 1
zcount 4 readonly,fast 1 1 1
zlexcount 4 readonly,fast 1 1 1
zrange -4 readonly 1 1 1
zrangestore -5 write,denyoom 1 2 1
zrangebyscore -4 readonly 1 1 1
zrangebylex -4 readonly 1 1 1
zrevrangebyscore -4 readonly 1 1 1
zrevrangebylex -4 readonly 1 1 1
zrevrange -4 readonly 1 1 1
zrank 3 readonly,fast 1 1 1
zrevrank 3 readonly,fast 1 1 1
zrandmember -2 readonly 1 1 1
zscan -3 readonly 1 1 1
zunionstore -4 write,denyoom,movablekeys 1 1 1
zinterstore -4 write,denyoom,movablekeys 1 1 1
zdiffstore -4 write,denyoom,movablekeys 1 1 1
zunion -3 readonly,movablekeys 0 0 0
zinter -3 readonly,movablekeys 0 0 0
zdiff -3 readonly,movablekeys 0 0 0
zintercard -3 readonly,movablekeys 0 0 0
zmpop -4 write,movablekeys 0 0 0
bzmpop -5 write,blocking,movablekeys 0 0 0
bzpopmin -3 write,noscript,blocking,fast 1 -2 1
bzpopmax -3 write,noscript,blocking,fast 1 -2 1
xread -4 readonly,blocking,movablekeys 0 0 0
xreadgroup -7 write,blocking,movablekeys 0 0 0
xrange -4 readonly 1 1 1
xrevrange -4 readonly 1 1 1
xlen 2 readonly,fast 1 1 1
xpending -3 readonly 1 1 1
xgroup -2 - 0 0 0
xgroup|create -5 write,denyoom 2 2 1
xgroup|createconsumer 5 write,denyoom 2 2 1
xgroup|delconsumer 5 write 2 2 1
xgroup|destroy 4 write 2 2 1
xgroup|setid -5 write 2 2 1
xinfo -2 - 0 0 0
xinfo|consumers 4 readonly 2 2 1
xinfo|groups 3 readonly 2 2 1
xinfo|stream -3 readonly 2 2 1
georadius -6 write,denyoom,movablekeys 1 1 1
georadiusbymember -5 write,denyoom,movablekeys 1 1 1
georadius_ro -6 readonly 1 1 1
georadiusbymember_ro -5 readonly 1 1 1
geosearch -7 readonly 1 1 1
geosearchstore -8 write,denyoom 1 2 1
geopos -2 readonly 1 1 1
geodist -4 readonly 1 1 1
geohash -2 readonly 1 1 1
pfcount -2 readonly 1 -1 1
pfmerge -2 write,denyoom 1 -1 1
getbit 3 readonly,fast 1 1 1
bitcount -2 readonly 1 1 1
bitop -4 write,denyoom 2 -1 1
bitpos -3 readonly 1 1 1
bitfield_ro -2 readonly,fast 1 1 1
lcs -3 readonly 1 2 1
eval -3 noscript,stale,skip_monitor,no_mandatory_keys,movablekeys 0 0 0
evalsha -3 noscript,stale,skip_monitor,no_mandatory_keys,movablekeys 0 0 0
eval_ro -3 readonly,noscript,stale,skip_monitor,no_mandatory_keys,movablekeys 0 0 0
evalsha_ro -3 readonly,noscript,stale,skip_monitor,no_mandatory_keys,movablekeys 0 0 0
fcall -3 noscript,stale,skip_monitor,no_mandatory_keys,movablekeys 0 0 0
fcall_ro -3 readonly,noscript,stale,skip_monitor,no_mandatory_keys,movablekeys 0 0 0
script -2 - 0 0 0
script|exists -3 noscript 0 0 0 req:all_shards,resp:agg_logical_and
script|flush -2 noscript 0 0 0 req:all_nodes,resp:all_succeeded
script|kill 2 noscript,allow_busy 0 0 0 req:all_shards,resp:one_succeeded
script|load 3 noscript,stale 0 0 0 req:all_nodes,resp:all_succeeded
function -2 - 0 0 0
function|delete 3 write,noscript 0 0 0 req:all_shards,resp:all_succeeded
function|flush -2 write,noscript 0 0 0 req:all_shards,resp:all_succeeded
function|kill 2 noscript,allow_busy 0 0 0 req:all_shards,resp:one_succeeded
function|load -3 write,denyoom,noscript 0 0 0 req:all_shards,resp:all_succeeded
function|restore -3 write,denyoom,noscript 0 0 0 req:all_shards,resp:all_succeeded
function|stats 2 noscript,allow_busy 0 0 0 req:all_shards,resp:special
publish 3 pubsub,loading,stale,fast 0 0 0
spublish 3 pubsub,loading,stale,fast 1 1 1
subscribe -2 pubsub,noscript,loading,stale 0 0 0
unsubscribe -1 pubsub,noscript,loading,stale 0 0 0
psubscribe -2 pubsub,noscript,loading,stale 0 0 0
punsubscribe -1 pubsub,noscript,loading,stale 0 0 0
ssubscribe -2 pubsub,noscript,loading,stale 1 -1 1
sunsubscribe -1 pubsub,noscript,loading,stale 1 -1 1
pubsub -2 - 0 0 0
ping -1 fast 0 0 0 req:all_shards,resp:all_succeeded
echo 2 loading,stale,fast 0 0 0
info -1 loading,stale 0 0 0 req:all_shards,resp:special
dbsize 1 readonly,fast 0 0 0 req:all_shards,resp:agg_sum
flushall -1 write 0 0 0 req:all_shards,resp:all_succeeded
flushdb -1 write 0 0 0 req:all_shards,resp:all_succeeded
keys 2 readonly 0 0 0 req:all_shards
scan -2 readonly 0 0 0 req:special
randomkey 1 readonly 0 0 0 req:all_shards
time 1 loading,stale,fast 0 0 0
lastsave 1 loading,stale,fast 0 0 0
command -1 loading,stale 0 0 0
cluster -2 - 0 0 0
readonly 1 loading,stale,fast 0 0 0
readwrite 1 loading,stale,fast 0 0 0
asking 1 fast 0 0 0
multi 1 noscript,loading,stale,fast,allow_busy 0 0 0
exec 1 noscript,loading,stale,skip_slowlog 0 0 0
discard 1 noscript,loading,stale,fast,allow_busy 0 0 0
watch -2 noscript,loading,stale,fast,allow_busy 1 -1 1
unwatch 1 noscript,loading,stale,fast,allow_busy 0 0 0
select 2 loading,stale,fast 0 0 0
auth -2 noscript,loading,stale,fast,no_auth,allow_busy 0 0 0
hello -1 noscript,loading,stale,fast,no_auth,allow_busy 0 0 0
client -2 - 0 0 0
config -2 - 0 0 0
config|set -4 admin,noscript,loading,stale 0 0 0 req:all_nodes,resp:all_succeeded
wait 3 noscript 0 0 0 req:all_shards,resp:agg_min
quit -1 noscript,loading,stale,fast,no_auth,allow_busy 0 0 0
reset 1 noscript,loading,stale,fast,no_auth,allow_busy 0 0 0
"""

_BUILTIN: CommandTable | None = None


def _expand_tip(tip: str) -> str:
    kind, _, value = tip.partition(":")
    return f"{_TIP_PREFIXES.get(kind, kind)}:{value}"


_TIP_PREFIXES = {"req": "request_policy", "resp": "response_policy"}


def _builtin_table() -> CommandTable:
    global _BUILTIN
    if _BUILTIN is None:
        tops: list[list[Any]] = []
        by_name: dict[str, list[Any]] = {}
        for line in _BUILTIN_ROWS.split("\n"):
            if not line:
                continue
            name, arity, flags, first, last, step, *tips = line.split()
            entry: list[Any] = [
                name,
                int(arity),
                [] if flags == "-" else flags.split(","),
                int(first),
                int(last),
                int(step),
                [],
                [_expand_tip(t) for t in tips[0].split(",")] if tips else [],
                [],
                [],
            ]
            parent, sep, _ = name.partition("|")
            if sep:
                by_name[parent][9].append(entry)
            else:
                tops.append(entry)
                by_name[name] = entry
        _BUILTIN = CommandTable(CommandInfo.from_reply(e) for e in tops)
    return _BUILTIN
