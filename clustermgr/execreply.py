"""Decoding an EXEC reply: each slot with the codec of the command queued there.

Between MULTI and EXEC/DISCARD a connection records, for every command it
sends, the codec that command asked for (``encoding=``, or the connection's
default). EXEC's reply is then decoded slot by slot, as aioredis 1.x does,
instead of with one codec for the whole array.
"""

from __future__ import annotations

from typing import Any

from .errors import ReplyError, WatchVariableError
from .protocol import decode

__all__ = ["ExecCodecs"]


class ExecCodecs:
    """The codecs of the commands queued in one MULTI, in order.

    Carried as the EXEC waiter's encoding: :meth:`apply` turns the raw reply
    into the caller's result.
    """

    __slots__ = ("codecs", "default")

    def __init__(self, default: str | None) -> None:
        self.codecs: list[str | None] = []
        #: Codec for slots past the recorded ones (and for every slot after :meth:`override`).
        self.default = default

    def override(self, encoding: str | None) -> ExecCodecs:
        """Decode every slot with ``encoding`` (EXEC's own ``encoding=``)."""
        self.codecs = []
        self.default = encoding
        return self

    def apply(self, reply: Any) -> Any:
        """The EXEC result: slots decoded; error replies stay in place as instances.

        A nil reply (a WATCHed key changed, nothing ran) raises
        :class:`WatchVariableError`. A codec that fails fails its slot only
        (the exception takes the slot's place).
        """
        if reply is None:
            raise WatchVariableError("WATCH variable has changed")
        if type(reply) is not list:
            return reply
        codecs = self.codecs
        result = []
        for index, item in enumerate(reply):
            codec = codecs[index] if index < len(codecs) else self.default
            if codec is not None and not isinstance(item, ReplyError):
                try:
                    item = decode(item, codec)
                except Exception as exc:  # a bad codec fails this slot only
                    item = exc
            result.append(item)
        return result
