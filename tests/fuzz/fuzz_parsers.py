"""Coverage-guided fuzzing of clustermgr's input parsers with atheris (optional).

Not collected by pytest (no ``test_`` prefix). Run it by hand, bounded::

    pip install atheris
    python tests/fuzz/fuzz_parsers.py -runs=200000          # all targets
    python tests/fuzz/fuzz_parsers.py -max_total_time=60

Each input drives three parsers; any exception other than the typed ones
listed below is a crash that atheris reports with the input that caused it:

* the reply parser (:func:`clustermgr.protocol.new_reader`), fed in chunks
  chosen by the input: only :class:`~clustermgr.errors.ProtocolError`;
* :func:`clustermgr.address.parse_address` on the input as text:
  only :class:`~clustermgr.address.InvalidAddressError`, and a password
  never appears in the error message;
* key extraction and slot mapping (:class:`~clustermgr.commands.CommandTable`):
  only CrossSlotError / RouteError, slots in 0..16383.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from clustermgr.address import InvalidAddressError, parse_address
    from clustermgr.commands import CommandTable
    from clustermgr.errors import CrossSlotError, ProtocolError, RouteError
    from clustermgr.protocol import new_reader

_TABLE = CommandTable.builtin()
_COMMANDS = ["GET", "SET", "MGET", "MSET", "DEL", "EVAL", "XREAD", "ZUNIONSTORE", "SORT",
             "OBJECT", "BITOP", "LMPOP", "MIGRATE", "GEORADIUS", "XREADGROUP", "BLPOP"]


def _reader(data: atheris.FuzzedDataProvider) -> None:
    reader = new_reader()
    chunks = data.ConsumeIntInRange(1, 8)
    for _ in range(chunks):
        reader.feed(data.ConsumeBytes(data.ConsumeIntInRange(0, 512)))
        try:
            for _ in range(4096):
                if reader.gets() is False:
                    break
        except ProtocolError:
            return


def _address(data: atheris.FuzzedDataProvider) -> None:
    password = "s3cr3t-" + data.ConsumeUnicodeNoSurrogates(8)
    text = data.ConsumeUnicodeNoSurrogates(120)
    for candidate in (text, f"redis://user:{password}@{text}", f"redis://{text}?password={password}"):
        try:
            address = parse_address(candidate)
        except InvalidAddressError as exc:
            if len(password) > 10:
                assert password not in str(exc), (candidate, str(exc))
            continue
        assert address.password is None or password not in repr(address)


def _routing(data: atheris.FuzzedDataProvider) -> None:
    name = _COMMANDS[data.ConsumeIntInRange(0, len(_COMMANDS) - 1)]
    args = tuple(data.ConsumeBytes(data.ConsumeIntInRange(0, 8))
                 for _ in range(data.ConsumeIntInRange(0, 8)))
    try:
        slot = _TABLE.slot(name, args)
    except (CrossSlotError, RouteError):
        return
    assert slot is None or 0 <= slot < 16384


def one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    target = data.ConsumeIntInRange(0, 2)
    (_reader, _address, _routing)[target](data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
