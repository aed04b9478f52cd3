"""A small client for the sentinels themselves (``SENTINEL MASTERS``, ``FAILOVER``, ...).

:class:`RedisSentinel` knows a list of sentinel addresses (and learns more),
keeps one command connection per sentinel, and can ask one sentinel (the first
that answers) or all of them in parallel, each bounded by a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from .._timeout import timeout as _timeout
from ..address import InvalidAddressError, ServerAddress, parse_address, redact_url
from ..connection import RedisConnection, create_connection
from ..errors import (
    AuthError,
    ConnectionClosedError,
    ProtocolError,
    RedisError,
    ReplyError,
    TimeoutError,
)
from ..options import InvalidOptionError, check_options, seconds
from ..remap import AddressRemap, remap_address
from ..tlsopts import Tls, resolve_tls
from ._common import Address, address_text, logger
from .errors import SentinelAuthError, SentinelsUnreachableError, UnknownServiceError
from .replies import address_reply, reply_dict, reply_dicts

__all__ = ["RedisSentinel", "create_sentinel"]

_SSL_OPTION = "sentinel ssl"


def _cut(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _as_address(address: Any) -> Address:
    target = _sentinel_address(address).target
    assert isinstance(target, tuple)
    return target


def _sentinel_address(address: Any) -> ServerAddress:
    parsed = parse_address(address)
    if parsed.host is None or parsed.port is None:
        raise InvalidAddressError(
            f"sentinel addresses must be TCP (host, port), not {redact_url(str(address))!r}"
        )
    for option in ("db", "encoding"):
        if getattr(parsed, option) is not None:
            raise InvalidAddressError(
                f"sentinel address {redact_url(str(address))!r}: the {option!r} option "
                "does not apply to sentinels"
            )
    return parsed


class RedisSentinel:
    """Commands to a group of sentinels (see :func:`create_sentinel`).

    ``timeout`` bounds connecting to and getting an answer from one sentinel.
    Each sentinel given as a URL keeps what its URL says (``rediss://`` for
    TLS, credentials, ``timeout``, ``name``); the keyword arguments fill the
    rest. Sentinels learned later use the keyword arguments, else the
    credentials of the first given URL that had some, and TLS when any given
    sentinel uses it. ``address_remap`` turns the addresses sentinels name
    (masters, replicas, other sentinels) into the ones to connect to
    (:mod:`clustermgr.remap`, applied by :meth:`remap`).
    """

    def __init__(
        self,
        sentinels: Iterable[Any],
        *,
        username: str | None = None,
        password: str | None = None,
        ssl: Any = None,
        timeout: float = 0.5,
        address_remap: AddressRemap | None = None,
    ) -> None:
        check_options(username=username, password=password, ssl=ssl, address_remap=address_remap)
        seconds("timeout", timeout, optional=False)
        given = [_sentinel_address(item) for item in sentinels]
        if not given:
            raise InvalidOptionError("at least one sentinel address is needed", option="sentinels")
        self._ssl = ssl
        self._timeout = timeout
        self._remap = address_remap
        self._addresses: list[Address] = []
        self._targets: dict[Address, tuple[ServerAddress, Tls]] = {}
        defaults = {"username": username, "password": password, "timeout": timeout}
        for parsed in given:
            self._remember(
                parsed.with_defaults(**defaults), resolve_tls([parsed], ssl, option=_SSL_OPTION)
            )
        credentials = next((a for a in given if a.password is not None), None)
        if password is None and credentials is not None:
            username, password = credentials.username, credentials.password
        self._learned = (
            ServerAddress(username=username, password=password, timeout=timeout),
            resolve_tls(given, ssl, option=_SSL_OPTION),
        )
        self._conns: dict[Address, RedisConnection] = {}
        self._connecting: dict[Address, asyncio.Future[RedisConnection]] = {}
        self._closers: set[asyncio.Future[None]] = set()
        self._closing = False

    def _remember(self, address: ServerAddress, tls: Tls) -> bool:
        target = address.target
        assert isinstance(target, tuple)
        if target in self._targets:
            return False
        self._addresses.append(target)
        self._targets[target] = (address, tls)
        return True

    # -- sentinel list ------------------------------------------------------

    @property
    def addresses(self) -> list[Address]:
        """Every known sentinel (the given ones, then the learned ones)."""
        return list(self._addresses)

    def remap(self, address: Address) -> Address:
        """An address a sentinel named, as this client reaches it (``address_remap``).

        Raises :class:`~clustermgr.remap.AddressRemapError` if the remap fails.
        """
        return remap_address(self._remap, address)

    @property
    def timeout(self) -> float:
        """Seconds allowed to one sentinel for connect + reply."""
        return self._timeout

    def add(self, address: Any) -> bool:
        """Remember another sentinel; True if it was new.

        A ``(host, port)`` pair gets the options of learned sentinels; a URL
        keeps its own.
        """
        parsed = _sentinel_address(address)
        options, tls = self._learned
        if isinstance(address, (tuple, list)):
            return self._remember(replace(options, host=parsed.host, port=parsed.port), tls)
        defaults = {"username": options.username, "password": options.password,
                    "timeout": self._timeout}
        return self._remember(
            parsed.with_defaults(**defaults), resolve_tls([parsed], self._ssl, option=_SSL_OPTION)
        )

    async def open_connection(self, address: Address) -> RedisConnection:
        """A new connection to the known sentinel at ``address``, with its options.

        The caller owns (and closes) it; used for event subscriptions.
        """
        options, tls = self._targets.get(address) or self._learned
        if options.host is None:
            options = replace(options, host=address[0], port=address[1])
        return await create_connection(options, ssl=tls)

    # -- connections ----------------------------------------------------------

    async def _connection(self, address: Address) -> RedisConnection:
        conn = self._conns.get(address)
        if conn is not None and not conn.closed:
            return conn
        pending = self._connecting.get(address)
        if pending is None:
            pending = asyncio.ensure_future(self.open_connection(address))
            self._connecting[address] = pending
            pending.add_done_callback(lambda done: self._connected(address, done))
        conn = await asyncio.shield(pending)
        if conn.closed:
            raise ConnectionClosedError("sentinel client was closed")
        return conn

    def _connected(self, address: Address, done: asyncio.Future[RedisConnection]) -> None:
        # Runs even when every waiter gave up (timeout): the connection is kept
        # (or closed) here, never leaked.
        self._connecting.pop(address, None)
        if done.cancelled() or done.exception() is not None:
            return
        conn = done.result()
        if self._closing:
            self._retire(conn)
            return
        old = self._conns.get(address)
        if old is not None and old is not conn:
            self._retire(old)
        self._conns[address] = conn

    async def execute_on(
        self, address: Any, command: bytes | str, *args: Any,
        parse: Callable[[Any, Address], Any] | None = None,
    ) -> Any:
        """Run one command on the sentinel at ``address`` (bounded by ``timeout``).

        ``parse(reply, address)``, if given, turns the reply into the result
        (raising :class:`ProtocolError` for a malformed one).

        Errors: :class:`ConnectError`/:class:`TimeoutError` when it cannot be
        reached, :class:`SentinelAuthError` for refused credentials, and the
        server's :class:`ReplyError` otherwise.
        """
        target = _as_address(address)
        try:
            async with _timeout(self._timeout):
                conn = await self._connection(target)
                reply = await conn.execute(command, *args)
            return reply if parse is None else parse(reply, target)
        except asyncio.TimeoutError:
            self._drop(target)
            raise TimeoutError(
                f"sentinel {address_text(target)} did not answer within {self._timeout}s"
            ) from None
        except AuthError as exc:
            self._drop(target)
            raise SentinelAuthError(
                f"sentinel {address_text(target)} refused the credentials: {exc}"
            ) from exc
        except ReplyError as exc:
            if str(exc).startswith("ERR AUTH"):  # a password sent to a sentinel without one
                self._drop(target)
                raise SentinelAuthError(f"sentinel {address_text(target)}: {exc}") from exc
            raise
        except (ConnectionClosedError, OSError):
            self._drop(target)
            raise

    def _drop(self, address: Address) -> None:
        conn = self._conns.pop(address, None)
        if conn is not None:
            self._retire(conn)

    def _retire(self, conn: RedisConnection) -> None:
        conn.close()
        closer = asyncio.ensure_future(conn.wait_closed())
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)

    async def ask_all(
        self, command: bytes | str, *args: Any
    ) -> dict[Address, Any]:
        """Run a command on every known sentinel in parallel.

        Returns ``{address: reply or exception}``; never raises for one
        sentinel's failure.
        """
        addresses = list(self._addresses)
        results = await asyncio.gather(
            *(self.execute_on(a, command, *args) for a in addresses), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(
                result, (RedisError, OSError)
            ):
                raise result
        return dict(zip(addresses, results, strict=True))

    async def execute(
        self, command: bytes | str, *args: Any,
        parse: Callable[[Any, Address], Any] | None = None,
    ) -> Any:
        """Run a command on the first sentinel that answers (known ones in order).

        ``parse`` as for :meth:`execute_on`. A reply error from a reachable
        sentinel is raised at once; a malformed reply is logged (naming the
        sentinel) and the next sentinel asked. When none gives a usable
        answer: :class:`SentinelsUnreachableError` naming each one's failure
        (or :class:`SentinelAuthError` if one refused our credentials).
        """
        failures: dict[Address, BaseException] = {}
        auth_error: SentinelAuthError | None = None
        for address in list(self._addresses):
            try:
                return await self.execute_on(address, command, *args, parse=parse)
            except SentinelAuthError as exc:
                auth_error = exc
                failures[address] = exc
            except ReplyError:
                raise
            except ProtocolError as exc:
                logger.warning("%s; asking the next sentinel", _cut(str(exc)))
                failures[address] = exc
            except (RedisError, OSError) as exc:
                failures[address] = exc
        if auth_error is not None:
            raise auth_error
        raise SentinelsUnreachableError(
            "no sentinel gave a usable answer: "
            + "; ".join(f"{address_text(a)}: {_cut(str(e))}" for a, e in failures.items()),
            failures=failures,
        )

    # -- sentinel commands ----------------------------------------------------

    async def master(self, name: str) -> dict[str, str]:
        """``SENTINEL MASTER name`` as a dict (raises :class:`UnknownServiceError`)."""
        return await self._about(name, b"MASTER", reply_dict)  # type: ignore[no-any-return]

    async def masters(self) -> list[dict[str, str]]:
        """``SENTINEL MASTERS``: every monitored master, as dicts."""
        return await self.execute(  # type: ignore[no-any-return]
            b"SENTINEL", b"MASTERS", parse=reply_dicts)

    async def master_address(self, name: str) -> Address:
        """``SENTINEL GET-MASTER-ADDR-BY-NAME`` as ``(host, port)``."""
        address = await self.execute(b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", name,
                                     parse=address_reply)
        if address is None:
            raise UnknownServiceError(f"no sentinel monitors a service named {name!r}")
        return self.remap(address)

    async def replicas(self, name: str) -> list[dict[str, str]]:
        """``SENTINEL REPLICAS name``: the master's replicas, as dicts."""
        return await self._about(name, b"REPLICAS", reply_dicts)  # type: ignore[no-any-return]

    slaves = replicas

    async def sentinels(self, name: str) -> list[dict[str, str]]:
        """``SENTINEL SENTINELS name``: the other sentinels of that master, as dicts."""
        return await self._about(name, b"SENTINELS", reply_dicts)  # type: ignore[no-any-return]

    async def failover(self, name: str) -> bool:
        """``SENTINEL FAILOVER name``: force a failover (no agreement needed)."""
        return await self._about(name, b"FAILOVER") in (b"OK", "OK")

    async def ckquorum(self, name: str) -> str:
        """``SENTINEL CKQUORUM name``: whether the quorum can authorise a failover."""
        reply = await self._about(name, b"CKQUORUM")
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def _about(
        self, name: str, subcommand: bytes, parse: Callable[[Any, Address], Any] | None = None
    ) -> Any:
        try:
            return await self.execute(b"SENTINEL", subcommand, name, parse=parse)
        except ReplyError as exc:
            if "No such master" in str(exc):
                raise UnknownServiceError(
                    f"no sentinel monitors a service named {name!r}"
                ) from exc
            raise

    # -- lifecycle ------------------------------------------------------------

    def close(self) -> None:
        """Close every sentinel connection."""
        self._closing = True
        for pending in self._connecting.values():
            pending.cancel()
        for conn in self._conns.values():
            conn.close()

    async def wait_closed(self) -> None:
        """Wait until every sentinel connection is closed."""
        pending = list(self._connecting.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            conn.close()
        await asyncio.gather(*(c.wait_closed() for c in conns), *self._closers)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    def __repr__(self) -> str:
        return f"<RedisSentinel {','.join(address_text(a) for a in self._addresses)}>"


async def create_sentinel(
    sentinels: Iterable[Any],
    *,
    username: str | None = None,
    password: str | None = None,
    ssl: Any = None,
    timeout: float = 0.5,
    address_remap: AddressRemap | None = None,
) -> RedisSentinel:
    """A :class:`RedisSentinel` for ``sentinels``, checked by a ``PING`` to one of them.

    ``username``/``password``/``ssl`` are the *sentinels'* credentials;
    ``address_remap``: see :class:`RedisSentinel`.
    Raises :class:`SentinelsUnreachableError` or :class:`SentinelAuthError`.
    """
    client = RedisSentinel(
        sentinels, username=username, password=password, ssl=ssl, timeout=timeout,
        address_remap=address_remap,
    )
    try:
        await client.execute(b"PING")
    except BaseException:
        client.close()
        await client.wait_closed()
        raise
    return client
