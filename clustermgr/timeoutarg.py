"""A blocking command's timeout argument, read exactly as redis-server reads it.

Seconds (BLPOP, BLMOVE, BZPOPMIN, ...) go through the server's ``strtold``
(x87 80-bit long double): a sign, decimal or hexadecimal digits
(``0x1p3``), exponents, ``inf``; no leading space, nothing after the
number, at most 5119 bytes. The server then takes ``ceil(value * 1000)``
milliseconds: 0 (also ``-0.0001``) waits forever, a negative or
out-of-range one is refused. Milliseconds (XREAD BLOCK, WAIT) must be a
plain decimal 64-bit integer (``string2ll``: no sign but ``-``, no leading
zero). :func:`server_wait` returns the wait or raises
:class:`~clustermgr.errors.TimeoutArgumentError` with the server's message.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from .errors import TimeoutArgumentError
from .protocol import excerpt

__all__ = ["server_wait"]

_DECIMAL = re.compile(rb"([+-]?)(?:([0-9]+)\.?([0-9]*)|\.([0-9]+))(?:[eE]([+-]?[0-9]+))?")
_HEX = re.compile(
    rb"([+-]?)0[xX](?:([0-9a-fA-F]+)\.?([0-9a-fA-F]*)|\.([0-9a-fA-F]+))(?:[pP]([+-]?[0-9]+))?"
)
_INFINITY = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)
_INTEGER = re.compile(rb"-?[1-9][0-9]*|0")
_LLONG = 2**63
#: Significant digits kept (the rest only as a sticky non-zero digit): far
#: more than the 64 bits of a long double, so rounding is still exact.
_KEEP = 40
#: x87 extended: 64-bit significand, smallest subnormal step 2**-16445,
#: overflow at 2**16384.
_MANTISSA, _TINY, _HUGE = 64, -16445, 16384
_LOG2_10 = math.log2(10)
_NOT_FLOAT = "timeout is not a float or out of range"
_NOT_INTEGER = "timeout is not an integer or out of range"


def _wire(value: Any) -> bytes | None:
    """The bytes the argument goes out as (None for a kind the encoder refuses)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    return None


def _round_long_double(value: Fraction) -> Fraction | None:
    """``value`` rounded to the nearest long double (ties to even); None on overflow."""
    if value == 0:
        return value
    size = abs(value)
    exponent = size.numerator.bit_length() - size.denominator.bit_length()
    if Fraction(2) ** exponent > size:
        exponent -= 1
    step = max(exponent - (_MANTISSA - 1), _TINY)
    rounded = round(size / Fraction(2) ** step) * Fraction(2) ** step
    if rounded >= Fraction(2) ** _HUGE:
        return None
    return rounded if value > 0 else -rounded


def _significand(digits: bytes, base: int) -> tuple[int, int]:
    """``digits`` (leading zeros gone) as (integer, digits dropped) with a sticky digit."""
    digits = digits.lstrip(b"0")
    if len(digits) <= _KEEP:
        return int(digits or b"0", base), 0
    kept, dropped = digits[:_KEEP], digits[_KEEP:]
    sticky = b"1" if dropped.strip(b"0") else b"0"
    return int(kept + sticky, base), len(dropped) - 1


def _exponent(text: bytes | None) -> int:
    """An exponent's digits as int, clamped far beyond any representable range."""
    if not text:
        return 0
    sign = -1 if text[:1] == b"-" else 1
    digits = text.lstrip(b"+-").lstrip(b"0") or b"0"
    return sign * (10**6 if len(digits) > 6 else int(digits))


def _strtold(text: bytes) -> Fraction | float | None:
    """What the server's ``string2ld`` makes of ``text``: a value, ``±inf``, or None (refused)."""
    if not 0 < len(text) < 5 * 1024:
        return None
    if _INFINITY.fullmatch(text):
        return -math.inf if text[:1] == b"-" else math.inf
    match = _HEX.fullmatch(text)
    base, scale = (16, 2) if match else (10, 10)
    match = match or _DECIMAL.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction, only_fraction, exponent = match.groups()
    if only_fraction is not None:
        whole, fraction = b"", only_fraction
    number, dropped = _significand(whole + fraction, base)
    if number == 0:
        return Fraction(0)
    shift = (dropped - len(fraction)) * (4 if base == 16 else 1) + _exponent(exponent)
    magnitude = number.bit_length() + shift * (1 if base == 16 else _LOG2_10)
    if magnitude > _HUGE + 8:
        return None  # overflow: HUGE_VAL and ERANGE
    if magnitude < _TINY - 8:
        return None  # underflow to zero and ERANGE
    value = _round_long_double(Fraction(number) * Fraction(scale) ** shift)
    if value is None or value == 0:
        return None
    return -value if sign == b"-" else value


def _refuse(name: bytes, raw: bytes, why: str) -> TimeoutArgumentError:
    return TimeoutArgumentError(
        f"ERR {why} ({name.decode('latin-1')} timeout {excerpt(raw, 64)}; refused "
        "before sending, as the server would)"
    )


def server_wait(name: bytes, value: Any, unit: int) -> float | None:
    """Seconds the server may hold ``name`` for timeout ``value`` (``unit``: 1 s or 1000 ms).

    ``math.inf`` when it waits forever; None for an argument kind the
    encoder refuses (it raises later). Raises
    :class:`~clustermgr.errors.TimeoutArgumentError` for a form the server refuses.
    """
    raw = _wire(value)
    if raw is None:
        return None
    if unit == 1000:
        if len(raw) >= 21 or not _INTEGER.fullmatch(raw) or not -_LLONG <= int(raw) < _LLONG:
            raise _refuse(name, raw, _NOT_INTEGER)
        milliseconds = int(raw)
    else:
        parsed = _strtold(raw)
        if parsed is None:
            raise _refuse(name, raw, _NOT_FLOAT)
        product = _round_long_double(Fraction(parsed) * 1000) if isinstance(
            parsed, Fraction) else None
        # Out of range, the cast to long long gives LLONG_MIN: "negative".
        milliseconds = -_LLONG if product is None else math.ceil(product)
        if not milliseconds < _LLONG:
            milliseconds = -_LLONG
    if milliseconds < 0:
        raise _refuse(name, raw, "timeout is negative")
    return math.inf if milliseconds == 0 else milliseconds / 1000
