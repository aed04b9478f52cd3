"""Exceptions raised by clustermgr.

The names and hierarchy follow aioredis 1.x so code that catches those keeps
working; the cluster-specific errors are added beside them.

Every error raised for a failed command carries ``may_have_executed``:
``False`` when the command provably never reached the server (it was not
written, or the server refused it with an error reply), ``True`` when the
connection broke after the command was written and the outcome is unknown.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any, ClassVar

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "AskError",
    "AskTargetUnreachableError",
    "AuthError",
    "BusyGroupError",
    "BusyLoadingError",
    "ChannelClosedError",
    "ClusterDownError",
    "ClusterRetryError",
    "ConnectError",
    "ConnectRefusedError",
    "ConnectResetError",
    "ConnectionClosedError",
    "ConnectionForcedCloseError",
    "CrossSlotError",
    "LoadingError",
    "MalformedRedirectError",
    "MasterNotFoundError",
    "MasterReplyError",
    "MaxClientsError",
    "MovedError",
    "MultiExecError",
    "NoPermissionError",
    "OutcomeUnknownError",
    "PipelineError",
    "PoolClosedError",
    "ProtocolError",
    "ReadOnlyError",
    "RedirectError",
    "RedisError",
    "ReplyError",
    "ReplyTimeoutError",
    "RouteError",
    "SlaveNotFoundError",
    "SlaveReplyError",
    "SocketNotFoundError",
    "TimeoutArgumentError",
    "TimeoutError",
    "TryAgainError",
    "WatchVariableError",
    "WrongTypeError",
    "alias_aioredis_errors",
    "parse_redirect",
]


class _CompatBase(Exception):
    """Placeholder base that :func:`alias_aioredis_errors` swaps for aioredis' RedisError.

    ``__bases__`` can only be reassigned between classes of the same layout:
    this plain subclass of Exception and aioredis' are.
    """


class RedisError(_CompatBase):
    """Base class of every error raised by clustermgr."""

    #: Whether the command this error reports on may have been applied.
    may_have_executed: bool = False


class ProtocolError(RedisError):
    """The server sent something that is not valid RESP."""

    may_have_executed = True


class ReplyError(RedisError):
    """The server answered a command with an error reply.

    Instantiating ``ReplyError(msg)`` returns the most specific subclass whose
    ``MATCH_REPLY`` prefix matches the message (one table, see
    :func:`_register_reply_error`). A reply error means the server processed
    and refused the command, so ``may_have_executed`` is ``False`` (except for
    errors raised by EXEC, see :class:`MultiExecError`).
    """

    MATCH_REPLY: ClassVar[str | tuple[str, ...] | None] = None
    # First word of the message -> subclass, and multi-word prefixes beside it.
    _by_word: ClassVar[dict[str, type[ReplyError]]] = {}
    _by_phrase: ClassVar[list[tuple[str, type[ReplyError]]]] = []

    def __new__(cls, msg: str = "", *args: Any) -> ReplyError:
        if cls is ReplyError and msg:
            klass = ReplyError._by_word.get(msg.split(" ", 1)[0])
            if klass is None:
                for phrase, candidate in ReplyError._by_phrase:
                    if msg.startswith(phrase):
                        klass = candidate
                        break
            if klass is not None:
                cls = klass.kind_for(msg)
        # Not super(): once aliased, aioredis' ReplyError.__new__ is next in the MRO.
        return Exception.__new__(cls)

    @classmethod
    def kind_for(cls, msg: str) -> type[ReplyError]:
        """The class an error reply ``msg`` matched to ``cls`` is made of (``cls`` itself,
        unless the subclass finds the message unusable)."""
        return cls

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        match = cls.__dict__.get("MATCH_REPLY")
        if match is not None:
            for prefix in (match,) if isinstance(match, str) else match:
                if " " in prefix:
                    ReplyError._by_phrase.append((prefix, cls))
                else:
                    ReplyError._by_word[prefix] = cls


class WrongTypeError(ReplyError):
    """Operation against a key holding the wrong kind of value."""

    MATCH_REPLY = "WRONGTYPE"


class AuthError(ReplyError):
    """Authentication failed or is required (NOAUTH, WRONGPASS)."""

    MATCH_REPLY = (
        "NOAUTH", "WRONGPASS", "ERR invalid password",
        "ERR Client sent AUTH, but no password is set",
        "ERR AUTH <password> called without any password configured",
    )


class NoPermissionError(ReplyError):
    """The ACL user may not run this command or touch this key."""

    MATCH_REPLY = "NOPERM"


class BusyGroupError(ReplyError):
    """XGROUP CREATE for a consumer group that already exists."""

    MATCH_REPLY = "BUSYGROUP"


class MaxClientsError(ReplyError):
    """The server refused the connection: maxclients reached."""

    MATCH_REPLY = (
        "ERR max number of clients reached",
        "ERR max number of clients + cluster connections reached",  # cluster-enabled node
    )


class ReadOnlyError(ReplyError):
    """A write was sent to a read-only replica (for example a demoted master)."""

    MATCH_REPLY = "READONLY"


class LoadingError(ReplyError):
    """The server is loading its dataset in memory."""

    MATCH_REPLY = "LOADING"


BusyLoadingError = LoadingError


class TryAgainError(ReplyError):
    """Multi-key command during a slot migration: keys split across nodes."""

    MATCH_REPLY = "TRYAGAIN"


class ClusterDownError(ReplyError):
    """The cluster cannot serve this slot right now (CLUSTERDOWN)."""

    MATCH_REPLY = "CLUSTERDOWN"


class CrossSlotError(ReplyError):
    """Keys of one atomic command hash to different slots.

    Raised by the cluster pool before anything is sent, or by the server.
    """

    MATCH_REPLY = "CROSSSLOT"


def parse_redirect(msg: str) -> tuple[int, str, int] | None:
    """``(slot, host, port)`` of ``MOVED <slot> <endpoint>`` / ``ASK ...``, or None if malformed.

    The endpoint is ``host:port``, ``[ipv6]:port`` or a bare IPv6 ``::1:7000``
    (split at the last colon). The slot must be 0-16383 and the port 1-65535;
    anything else (missing or extra fields, non-digits) is malformed. An empty
    host (``MOVED 3999 :6380``) is valid: Redis sends it when the node does not
    know its own endpoint and means "the host of the connection that got this
    reply"; the connection's reader fills it in (see :func:`clustermgr.protocol.new_reader`).
    Any other host must be an IP literal or a name that can be looked up
    (IDNA-encodable: labels of 1-63 characters, no forbidden characters), so a
    redirect that could never be connected to is malformed here, not a
    surprise at connect time.
    """
    parts = msg.split()
    if len(parts) != 3:
        return None
    slot_text = parts[1]
    host, colon, port_text = parts[2].rpartition(":")
    if not colon or not _is_small_number(slot_text) or not _is_small_number(port_text):
        return None
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")) or len(host) < 3:
            return None
        host = host[1:-1]
    slot, port = int(slot_text), int(port_text)
    if slot >= _SLOTS or not 0 < port < 65536 or (host and not _is_host(host)):
        return None
    return slot, host, port


def _is_host(host: str) -> bool:
    """True if ``host`` is an IP literal or a name that can be looked up."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if ":" in host:
        return False
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _is_small_number(text: str) -> bool:
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit()


_SLOTS = 16384


class RedirectError(ReplyError):
    """Base for MOVED and ASK: the slot is served by another node.

    ``slot``, ``host`` and ``port`` come from the message; a reply whose
    message cannot be parsed becomes a :class:`MalformedRedirectError` instead.
    """

    def __init__(self, msg: str, *args: Any) -> None:
        super().__init__(msg, *args)
        parsed = parse_redirect(msg)
        if parsed is None:
            raise ProtocolError(f"malformed redirect reply: {msg!r}")
        self.slot, self.host, self.port = parsed

    @classmethod
    def kind_for(cls, msg: str) -> type[ReplyError]:
        """``cls``, or :class:`MalformedRedirectError` when ``msg`` does not parse."""
        return cls if parse_redirect(msg) is not None else MalformedRedirectError

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the node the reply points to."""
        return self.host, self.port


class MovedError(RedirectError):
    """The slot has moved for good to another node."""

    MATCH_REPLY = "MOVED"


class AskError(RedirectError):
    """The slot is being migrated: ask the target node for this one command."""

    MATCH_REPLY = "ASK"


class MalformedRedirectError(ReplyError, ProtocolError):
    """A MOVED/ASK reply that cannot be parsed (bad slot, port or endpoint).

    A :class:`ProtocolError` that fails only the command it answered (the RESP
    stream itself is intact, so the connection stays); never followed or
    retried. The server refused the command, so ``may_have_executed`` is False.
    """

    may_have_executed = False

    def __str__(self) -> str:
        return f"malformed redirect reply: {super().__str__()!r}"


class MasterReplyError(RedisError):
    """A sentinel answered a master query with an error."""


class SlaveReplyError(RedisError):
    """A sentinel answered a replica query with an error."""


class PipelineError(RedisError):
    """One or more commands of a pipeline failed.

    ``args`` is ``("<Class> errors:", errors)`` as in aioredis 1.x (its users
    read ``e.args[1]``); ``str(e)`` is ``"<Class> errors: <errors!r>"``.
    """

    def __init__(self, errors: list[BaseException] | Any, *args: Any) -> None:
        # Not super(): once aliased, aioredis' PipelineError.__init__ is next in the MRO.
        Exception.__init__(self, f"{self.__class__.__name__} errors:", errors, *args)
        self.errors = errors

    def __str__(self) -> str:
        return f"{self.args[0]} {self.errors!r}"

    def __reduce__(self) -> tuple[Any, ...]:
        # args hold the label too: rebuild from the errors (pickle, copy).
        return (type(self), (self.errors, *self.args[2:]), self.__dict__)


class MultiExecError(PipelineError):
    """A MULTI/EXEC transaction failed."""

    may_have_executed = True


class WatchVariableError(MultiExecError):
    """EXEC aborted because a WATCHed key changed; nothing was applied."""

    may_have_executed = False


class ChannelClosedError(RedisError):
    """Reading from a pub/sub channel that was closed (unsubscribed)."""


class ConnectionClosedError(RedisError):
    """The connection closed, or broke, before the reply arrived.

    ``may_have_executed`` tells whether the command had been written to the
    socket before the connection went away (its outcome is unknown then).
    """

    def __init__(self, msg: str = "", *args: Any, may_have_executed: bool = False) -> None:
        super().__init__(msg, *args)
        self.may_have_executed = may_have_executed

    def __str__(self) -> str:
        base = super().__str__()
        note = (
            "the command may have been executed"
            if self.may_have_executed
            else "the command was not executed"
        )
        return f"{base} ({note})" if base else note


class ConnectionForcedCloseError(ConnectionClosedError):
    """The connection was closed on purpose (close() or fencing a demoted master)."""


class ConnectError(RedisError, ConnectionError):
    """A connection could not be opened (refused, unreachable, TLS failure).

    :meth:`from_os_error` raises the kind matching the OS error, so
    ``except ConnectionRefusedError:`` (what aioredis 1.x let through)
    still catches a refused connection.
    """

    @classmethod
    def from_os_error(cls, msg: str, exc: OSError) -> ConnectError:
        """A ConnectError for ``exc``: also its builtin kind when listed, with its errno."""
        kind = next((_CONNECT_KINDS[c] for c in type(exc).__mro__ if c in _CONNECT_KINDS), cls)
        error = kind(msg)
        error.errno = exc.errno  # strerror stays unset: str() keeps the message
        return error


class ConnectRefusedError(ConnectError, ConnectionRefusedError):
    """Nothing listens at the address; also a ``ConnectionRefusedError``."""


class ConnectResetError(ConnectError, ConnectionResetError):
    """The server reset the connection while it was opened; also a ``ConnectionResetError``."""


class SocketNotFoundError(ConnectError, FileNotFoundError):
    """The unix socket path does not exist; also a ``FileNotFoundError``."""


_CONNECT_KINDS: dict[type[OSError], type[ConnectError]] = {
    ConnectionRefusedError: ConnectRefusedError,
    ConnectionResetError: ConnectResetError,
    FileNotFoundError: SocketNotFoundError,
}


class PoolClosedError(RedisError):
    """The pool is closing or closed."""


class RouteError(RedisError):
    """A command cannot be routed (no key where one is needed, no node for a slot)."""


class OutcomeUnknownError(ConnectionClosedError):
    """A write was sent, then its connection broke: it may have been applied.

    Routing pools do not retry it (retrying could apply it twice); the caller
    decides. ``may_have_executed`` is always True.
    """

    def __init__(self, msg: str) -> None:
        super().__init__(msg, may_have_executed=True)


class ClusterRetryError(RouteError):
    """A command ran out of redirects or of its time budget.

    ``last_error`` is the last redirect or transient error seen;
    ``may_have_executed`` is True only if some attempt's outcome is unknown.
    """

    def __init__(
        self, msg: str, last_error: BaseException | None, *, may_have_executed: bool = False
    ) -> None:
        note = "it may have been applied" if may_have_executed else "it was not applied"
        super().__init__(f"{msg} ({note})")
        self.last_error = last_error
        self.may_have_executed = may_have_executed


class AskTargetUnreachableError(ClusterRetryError):
    """A command for a key that a slot migration already moved gave up: the node
    the migration's source sent it to (ASK) did not answer within ``retry_timeout``.

    ``slot`` is the migrating slot and ``address`` the ``(host, port)`` the ASK
    named. The command was held, not redirected again, until the budget ended.
    On Redis 7 a migration whose target died stays pointed at it until an
    operator moves it on (``CLUSTER SETSLOT``); Valkey 8 points it at the
    promoted replica.
    """

    def __init__(
        self, msg: str, last_error: BaseException | None, *, slot: int,
        address: tuple[str, int], may_have_executed: bool = False,
    ) -> None:
        super().__init__(msg, last_error, may_have_executed=may_have_executed)
        self.slot = slot
        self.address = address


class MasterNotFoundError(RedisError):
    """No sentinel could name a reachable master for the service."""


class SlaveNotFoundError(RedisError):
    """No sentinel could name a reachable replica for the service."""


class TimeoutError(RedisError, asyncio.TimeoutError):
    """A bounded wait (connect, acquire, reply) ran out; also an asyncio.TimeoutError.

    ``may_have_executed`` is False for waits that end before anything is sent
    (connecting, acquiring) and True when a sent command's reply never came.
    """

    def __init__(self, msg: str = "", *args: Any, may_have_executed: bool = False) -> None:
        super().__init__(msg, *args)
        self.may_have_executed = may_have_executed


class ReplyTimeoutError(TimeoutError):
    """A connection owing replies stayed silent past its reply bound (``read_timeout``).

    ``silent_for``: seconds the connection had been silent; every command it
    was awaiting had been pending at most that long. ``may_have_executed``
    is True.
    """

    def __init__(self, msg: str, *, silent_for: float) -> None:
        super().__init__(msg, may_have_executed=True)
        self.silent_for = silent_for


class ArgumentError(ValueError):
    """A bad argument value: a pool size out of range, a connection not from this pool.

    After :func:`alias_aioredis_errors` it is also an ``AssertionError``:
    aioredis 1.x checked these arguments with ``assert``, so its users catch
    that (clustermgr checks them without ``assert``, which ``python -O`` strips).
    """


class TimeoutArgumentError(ReplyError, ArgumentError):
    """A blocking command's timeout in a form the server refuses, refused before sending.

    A :class:`ReplyError` carrying the server's own message (code that
    handled the server's refusal keeps working) and an :class:`ArgumentError`;
    nothing was sent, so ``may_have_executed`` is False.
    """


class ArgumentTypeError(TypeError):
    """An argument of the wrong kind (``pool_cls``/``connection_cls`` not a clustermgr class).

    Also an ``AssertionError`` after :func:`alias_aioredis_errors`, as :class:`ArgumentError`.
    """


def alias_aioredis_errors(aioredis_errors: Any) -> None:
    """Make each clustermgr error a real subclass of aioredis' class of the same name.

    ``except aioredis.ReplyError:`` matches by the real MRO only (CPython's
    exception matching ignores ``__subclasscheck__``, so ABC registration
    would satisfy ``isinstance`` but not ``except``). The aioredis class is
    appended to the bases of its namesake; ``RedisError``'s placeholder base
    is replaced by aioredis' ``RedisError``. :class:`ArgumentError` and
    :class:`ArgumentTypeError` gain ``AssertionError``. Idempotent.
    """
    for argument_error in (ArgumentError, ArgumentTypeError):
        if not issubclass(argument_error, AssertionError):
            argument_error.__bases__ = (*argument_error.__bases__, AssertionError)
    ours = [c for c in globals().values() if isinstance(c, type) and issubclass(c, RedisError)]
    for cls in sorted(ours, key=lambda c: len(c.__mro__)):  # parents first
        theirs = getattr(aioredis_errors, cls.__name__, None)
        if not isinstance(theirs, type) or issubclass(cls, theirs):
            continue
        if cls is RedisError:
            cls.__bases__ = (theirs,)
        else:
            cls.__bases__ = (*cls.__bases__, theirs)
