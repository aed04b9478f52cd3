"""The bound on one reply's size (``max_reply_size``).

:class:`ReplyBound` walks the RESP skeleton of the byte stream *before* the
parser sees it: every header, skipping bulk payloads by their length, so a
reply that announces more than the bound (``$1000000000000``, or an
aggregate whose elements cannot fit: each takes at least 3 bytes on the
wire) is refused at its header, and one that streams more is refused once
its bytes pass the bound. Nothing past the bound is ever handed to the
parser. The walk keeps no bytes: a few counters and at most one partial
header line.

The walk is lenient where the parser is strict (it reads lengths with
``int``): anything it cannot read is malformed for the parser too, so it
stops walking and lets the parser raise its :class:`ProtocolError`.
"""

from __future__ import annotations

from .errors import ProtocolError

__all__ = ["DEFAULT_MAX_REPLY_SIZE", "ReplyBound", "ReplyTooLargeError"]

#: 512 MiB, the server's own ``proto-max-bulk-len`` default.
DEFAULT_MAX_REPLY_SIZE = 512 * 1024 * 1024

_LINES = frozenset(b"+-:_,#(")
_BULKS = frozenset(b"$=!")
_ARRAYS = frozenset(b"*~>")
_PAIRS = frozenset(b"%|")  # maps and attributes: two elements per entry
_COUNTED = _BULKS | _ARRAYS | _PAIRS
_SMALLEST = 3  # bytes of the smallest element on the wire (``+\r\n``, ``_\r\n``)
_CARRIED = 64  # bytes of a cut header line kept for the next chunk


class ReplyTooLargeError(ProtocolError):
    """A reply announced or streamed more than ``max_reply_size`` bytes."""

    def __init__(self, size: int, bound: int, *, announced: bool) -> None:
        what = "announces at least" if announced else "runs past"
        super().__init__(
            f"reply {what} {size} bytes, more than max_reply_size={bound}; connection closed"
        )
        #: Bytes the reply announced (or had sent) when it was refused.
        self.size = size
        #: The bound it broke.
        self.bound = bound


class ReplyBound:
    """Follows the reply boundaries of one connection's stream and enforces the bound."""

    __slots__ = ("_line", "_off", "_size", "_skip", "_stack", "bound", "stop")

    def __init__(self, bound: int) -> None:
        if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
            raise ValueError(f"max_reply_size must be a positive number of bytes, not {bound!r}")
        self.bound = bound
        #: After a refusal: the bytes of the refused chunk that may still be parsed.
        self.stop = 0
        self._stack: list[int] = []  # elements still due per open aggregate
        self._skip = 0  # bulk bytes (payload and CRLF) still due from later chunks
        self._size = 0  # bytes of the current reply in earlier chunks
        self._line: bytes | None = None  # a header line cut by the chunk's end
        self._off = False  # the stream is malformed: the parser will raise

    def scan(self, data: bytes) -> ReplyTooLargeError | None:
        """Walk ``data``; the error if a reply breaks the bound (see :attr:`stop`)."""
        if self._off:
            return None
        stack = self._stack
        if not stack and data[-2:] == b"\r\n" and self._line is None and not self._skip:
            # The chunk may hold exactly one reply, a lone caller's (+OK, :1, $n ... GET):
            # the short path, one look at its header.
            kind = data[0]
            end = data.find(b"\r\n")
            if kind == 36 and end > 0:
                try:
                    whole = end + 4 + int(data[1:end]) == len(data)
                except ValueError:
                    whole = False
                if whole and len(data) <= self.bound:
                    return None
            elif kind in _LINES and end == len(data) - 2 and end + 2 <= self.bound:
                return None
        size = self._size  # bytes of the open reply before ``base``
        cut = 0  # bytes of a cut header line put back in front of data
        if self._line is not None:
            line, self._line = self._line, None
            cut = len(line)
            size -= cut  # counted at the last chunk's end, counted again here
            data = line + data
        n = len(data)
        base = 0  # where, in data, the open reply's uncounted bytes start
        pos = 0
        if self._skip:
            if self._skip > n:
                self._skip -= n
                self._size = size + n
                return None
            pos = self._skip
            self._skip = 0
            if not stack or self._element_done(stack):
                if size + pos > self.bound:
                    return self._refuse(size + pos, 0, announced=False)
                size, base = 0, pos
        find = data.find
        bound = self.bound
        while pos < n:
            kind = data[pos]
            if kind == 36 and stack:
                # A run of bulk strings in an aggregate (LRANGE, HGETALL, MGET...): the
                # tight path. What it cannot take whole (a cut, a huge length) is left
                # to the general one below.
                remaining = start = stack[-1]
                while remaining and pos < n and data[pos] == 36:
                    end = find(b"\r\n", pos)
                    if end < 0:
                        break
                    try:
                        count = int(data[pos + 1:end])
                    except ValueError:
                        self._off = True
                        return None
                    following = end + 4 + count if count >= 0 else end + 2
                    if following > n:
                        break
                    pos = following
                    remaining -= 1
                if remaining != start:
                    if size + pos - base > bound:
                        return self._refuse(size + pos - base, max(0, base - cut), announced=False)
                    if remaining:
                        stack[-1] = remaining
                        continue
                    stack.pop()
                    if stack and not self._element_done(stack):
                        continue
                    size, base = 0, pos  # a whole reply ends at pos (checked just above)
                    continue
            elif kind == 36 and size == 0:
                # A run of whole bulk-string replies (pipelined GETs): the tight path too.
                first = pos
                while pos < n and data[pos] == 36:
                    end = find(b"\r\n", pos)
                    if end < 0:
                        break
                    try:
                        count = int(data[pos + 1:end])
                    except ValueError:
                        self._off = True
                        return None
                    following = end + 4 + count if count >= 0 else end + 2
                    if following > n or following - pos > bound:
                        break
                    pos = following
                if pos != first:
                    base = pos
                    continue
            end = find(b"\r\n", pos)
            if end < 0:
                if n - pos > _CARRIED:  # only a length header needs its text: keep its start
                    self._line = data[pos:pos + _CARRIED] + (b"\r" if data[-1] == 13 else b"")
                else:
                    self._line = data[pos:]
                break
            if kind == 36:  # "$", the most common: a bulk string
                try:
                    count = int(data[pos + 1:end])
                except ValueError:
                    self._off = True
                    return None
                pos = end + 2
                if count >= 0:
                    pos += count + 2
                    if size + pos - base > bound:
                        return self._refuse(size + pos - base, max(0, base - cut), announced=True)
                    if pos > n:
                        self._skip = pos - n
                        break
            elif kind in _LINES:
                pos = end + 2
            elif kind in _COUNTED:
                try:
                    count = int(data[pos + 1:end])
                except ValueError:
                    self._off = True
                    return None
                pos = end + 2
                if count >= 0:
                    if kind in _BULKS:
                        total = size + pos - base + count + 2
                        if total > bound:
                            return self._refuse(total, max(0, base - cut), announced=True)
                        pos += count + 2
                        if pos > n:
                            self._skip = pos - n
                            break
                    else:
                        if kind in _PAIRS:
                            count *= 2
                        total = size + pos - base + _SMALLEST * count
                        if total > bound:
                            return self._refuse(total, max(0, base - cut), announced=True)
                        if count:
                            stack.append(count)
                            continue
            else:
                self._off = True
                return None
            if stack:
                remaining = stack[-1] - 1
                if remaining:
                    stack[-1] = remaining
                    continue
                stack.pop()
                if stack and not self._element_done(stack):
                    continue
            # A whole reply ends at pos.
            if size + pos - base > bound:
                return self._refuse(size + pos - base, max(0, base - cut), announced=False)
            size, base = 0, pos
        return self._carry(size + n - base, max(0, base - cut))

    def _carry(self, size: int, base: int) -> ReplyTooLargeError | None:
        """At the chunk's end: the open reply's bytes so far count toward the bound."""
        if not (self._stack or self._skip or self._line is not None):
            self._size = 0
            return None
        self._size = size
        if size > self.bound:
            return self._refuse(size, base, announced=False)
        return None

    def _refuse(self, size: int, base: int, *, announced: bool) -> ReplyTooLargeError:
        # The replies before the refused one (it starts at base) may still be parsed.
        self._off = True
        self.stop = base
        return ReplyTooLargeError(size, self.bound, announced=announced)

    @staticmethod
    def _element_done(stack: list[int]) -> bool:
        """One element ended; True if that ended a whole reply."""
        while stack:
            stack[-1] -= 1
            if stack[-1]:
                return False
            stack.pop()
        return True
