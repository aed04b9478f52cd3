"""Command encoding and reply decoding."""

from __future__ import annotations

import pytest

from clustermgr.errors import ProtocolError, ReplyError, WrongTypeError
from clustermgr.protocol import decode, encode_command, new_reader


def test_encode_mixed_arguments() -> None:
    assert encode_command(b"SET", ("k", 1, 2.5)) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$3\r\n2.5\r\n"
    )


@pytest.mark.parametrize("bad", [None, True, [1], {"a": 1}, object()])
def test_bad_argument_type_fails_before_sending(bad: object) -> None:
    with pytest.raises(TypeError, match="argument 2 of b'SET'"):
        encode_command(b"SET", ("k", bad))


def test_reader_types_errors_and_nested_errors() -> None:
    reader = new_reader()
    reader.feed(b"-WRONGTYPE nope\r\n*2\r\n-ERR inner\r\n:5\r\n")
    top = reader.gets()
    assert isinstance(top, WrongTypeError)
    nested = reader.gets()
    assert isinstance(nested[0], ReplyError) and nested[1] == 5
    assert reader.gets() is False


def test_reader_rejects_garbage() -> None:
    reader = new_reader()
    reader.feed(b"?garbage\r\n")
    with pytest.raises(ProtocolError):
        reader.gets()


def test_decode_recursive() -> None:
    assert decode([b"a", [b"b", 1, None]], "utf-8") == ["a", ["b", 1, None]]
