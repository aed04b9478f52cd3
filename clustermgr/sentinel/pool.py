"""SentinelPool: an AbcPool for the master (or a replica) of a Sentinel-managed service.

The pool serves commands from a :class:`~clustermgr.pool.ConnectionsPool` to
the current master; when nothing is happening, :meth:`SentinelPool.execute`
is that pool's ``execute`` plus one attribute lookup. Around it:

* **Discovery** (:mod:`.discovery`): sentinels asked in parallel, majority,
  newest config epoch; every new connection is checked with ``ROLE``.
* **Events** (:mod:`.monitor`): every sentinel's event stream. The first sign
  that our master is being replaced (``+odown``, ``+try-failover``,
  ``+failover-state-send-slaveof-noone``, ...) *holds* commands; the old
  master is fenced (all its connections closed, acquired ones too) once the
  replica is being promoted; commands are released to the new master once it
  answers ``ROLE`` master, or at ``+switch-master``. Nothing is written to a
  master that is about to be demoted, so no acknowledged write is lost.
* **Errors**: READONLY, a refused or broken connection, or a wrong ROLE start
  a (coalesced, rate-limited) rediscovery; commands that provably did not run
  are retried once the master is known again; callers wait, bounded by
  ``failover_timeout``.
* **Pub/sub**: subscriptions are the pool's desired state; the same Channel
  objects move to each new master.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .._timeout import timeout as _timeout
from ..abc import AbcChannel, AbcConnection, AbcPool
from ..connection import RedisConnection
from ..errors import (
    AuthError,
    ConnectError,
    ConnectionForcedCloseError,
    MasterNotFoundError,
    PoolClosedError,
    RedisError,
    SlaveNotFoundError,
)
from ..pool import ConnectionsPool
from ..protocol import case_variants, lookup_command
from ..pubsub import Channel
from ._reply import RETRYABLE, SentinelReply
from .discovery import check_role, discover_master, discover_replicas
from .errors import FailoverTimeoutError, RoleMismatchError
from .events import PROMOTION_EVENTS, SentinelEvent
from .monitor import SentinelMonitor
from .sentinel import RedisSentinel

__all__ = ["SentinelPool", "create_sentinel_pool"]

logger = logging.getLogger("clustermgr.sentinel")

Address = tuple[str, int]

_PUBSUB_REGISTRY = {
    b"SUBSCRIBE": ("channels", True),
    b"PSUBSCRIBE": ("patterns", True),
    b"SSUBSCRIBE": ("shard_channels", True),
    b"UNSUBSCRIBE": ("channels", False),
    b"PUNSUBSCRIBE": ("patterns", False),
    b"SUNSUBSCRIBE": ("shard_channels", False),
}
_PUBSUB_COMMANDS = case_variants(*(name.decode() for name in _PUBSUB_REGISTRY))
_SUBSCRIBE_FOR = {"channels": b"SUBSCRIBE", "patterns": b"PSUBSCRIBE",
                  "shard_channels": b"SSUBSCRIBE"}


def _text(address: Any) -> str:
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


class _Relay(AbcChannel):
    """Stands for a user's channel inside one server pool.

    Closing it (the server pool closes its channels when fenced) does not
    close the user's channel: that one moves on to the next master.
    """

    __slots__ = ("_target",)

    def __init__(self, target: AbcChannel) -> None:
        self._target = target

    @property
    def name(self) -> bytes:
        return self._target.name

    @property
    def is_pattern(self) -> bool:
        return self._target.is_pattern

    @property
    def is_active(self) -> bool:
        return self._target.is_active

    def put_nowait(self, data: Any) -> None:
        self._target.put_nowait(data)

    def close(self, exc: BaseException | None = None) -> None:
        """No-op: the SentinelPool decides when the user's channel ends."""


class _ServerPool(ConnectionsPool):
    """The pool to one data node; pub/sub commands go through the owner."""

    owner: SentinelPool | None = None

    def execute_pubsub(self, command: bytes | str, *channels: Any) -> Awaitable[Any]:
        owner = self.owner
        if owner is None:
            return super().execute_pubsub(command, *channels)
        return owner.execute_pubsub(command, *channels)


@dataclass
class _Failover:
    """A failover of our master in progress, as seen through sentinel events."""

    old: Address | None
    since: float
    reason: str
    started: bool = False  # a failover stage (not just +odown) was seen
    aborted: bool = False  # -failover-abort-* / -odown before a stage: old master stays
    candidate: Address | None = None  # the replica being promoted
    switch_to: Address | None = None  # from +switch-master


class SentinelPool(AbcPool):
    """Connections to the master (or a replica) of a Sentinel-managed service.

    Create with :func:`create_sentinel_pool`.
    """

    def __init__(
        self,
        sentinels: Iterable[Any],
        service: str,
        *,
        role: str = "master",
        db: int | None = None,
        username: str | None = None,
        password: str | None = None,
        ssl: Any = None,
        encoding: str | None = None,
        minsize: int = 1,
        maxsize: int = 10,
        parser: Any = None,
        create_connection_timeout: float | None = 2.0,
        acquire_timeout: float | None = None,
        connection_cls: type[RedisConnection] | None = None,
        name: str | None = None,
        sentinel_username: str | None = None,
        sentinel_password: str | None = None,
        sentinel_ssl: Any = None,
        sentinel_timeout: float = 0.5,
        failover_timeout: float = 15.0,
        rediscover_interval: float = 0.1,
        poll_interval: float = 0.05,
        max_retries: int = 3,
        early_release: bool = True,
        role_check_interval: float | None = 1.0,
    ) -> None:
        if role not in ("master", "replica", "slave"):
            raise ValueError(f"role must be 'master' or 'replica', not {role!r}")
        if not isinstance(service, str) or not service:
            raise ValueError(f"service must be a non-empty str, not {service!r}")
        if failover_timeout <= 0:
            raise ValueError(f"failover_timeout must be > 0, got {failover_timeout!r}")
        self._service = service
        self._role = "master" if role == "master" else "replica"
        self._pool_kwargs: dict[str, Any] = {
            "db": db, "username": username, "password": password, "ssl": ssl,
            "encoding": encoding, "minsize": minsize, "maxsize": maxsize, "parser": parser,
            "create_connection_timeout": create_connection_timeout,
            "acquire_timeout": acquire_timeout, "connection_cls": connection_cls,
            "name": name, "on_connect": self._verify_role,
        }
        self._db = db or 0
        self._encoding = encoding
        self._sentinel = RedisSentinel(
            sentinels, username=sentinel_username, password=sentinel_password,
            ssl=sentinel_ssl, timeout=sentinel_timeout,
        )
        self._monitor = SentinelMonitor(
            connect_kwargs=self._sentinel.connect_kwargs(),
            on_event=self._on_event, on_state=self._on_sentinel_state,
        )
        self._failover_timeout = failover_timeout
        self._rediscover_interval = rediscover_interval
        self._poll_interval = poll_interval
        self._max_retries = max_retries
        self._early_release = early_release
        self._role_check_interval = role_check_interval
        #: The pool commands go to now; None while holding (failover, rediscovery).
        self._active: _ServerPool | None = None
        #: The pool last installed (may be held or fenced).
        self._current: _ServerPool | None = None
        self._ready: asyncio.Future[_ServerPool] = asyncio.get_running_loop().create_future()
        self._resolver: asyncio.Task[None] | None = None
        self._failover: _Failover | None = None
        self._wake = asyncio.Event()
        self._last_discovery = float("-inf")
        self._last_error: BaseException | None = None
        self._acquired: dict[AbcConnection, _ServerPool] = {}
        self._subscriptions: dict[str, dict[bytes, AbcChannel]] = {
            "channels": {}, "patterns": {}, "shard_channels": {},
        }
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retired: list[_ServerPool] = []
        self._seen_sentinels: set[Address] = set()
        self._closing = False
        #: Number of master (or replica) changes followed.
        self.switch_count = 0
        #: Loop time of the last change, and how long commands were held for it.
        self.last_switch_at: float | None = None
        self.last_hold_duration: float | None = None

    # -- startup ------------------------------------------------------------

    async def _start(self) -> None:
        for address in self._sentinel.addresses:
            self._monitor.watch(address)
        pool = await self._first_pool()
        self._install(pool, "initial discovery")
        await self._learn_sentinels()
        if self._role_check_interval:
            self._spawn(self._watchdog(self._role_check_interval))

    async def _first_pool(self) -> _ServerPool:
        self._last_discovery = asyncio.get_running_loop().time()
        if self._role == "master":
            candidates, _views = await discover_master(self._sentinel, self._service)
        else:
            candidates = await discover_replicas(self._sentinel, self._service)
        errors: list[str] = []
        for address in candidates:
            try:
                return await self._open(address)
            except AuthError as exc:
                raise AuthError(
                    f"{self._role} {_text(address)} of {self._service!r} refused the "
                    f"credentials: {exc}"
                ) from exc
            except (RedisError, OSError) as exc:
                errors.append(f"{_text(address)}: {exc}")
        not_found = MasterNotFoundError if self._role == "master" else SlaveNotFoundError
        raise not_found(
            f"no {self._role} of {self._service!r} could be used: " + "; ".join(errors)
        )

    async def _learn_sentinels(self) -> None:
        try:
            peers = await self._sentinel.sentinels(self._service)
        except (RedisError, OSError) as exc:
            logger.debug("could not list the sentinels of %r: %s", self._service, exc)
            return
        for peer in peers:
            try:
                self._learn((peer["ip"], int(peer["port"])))
            except (KeyError, ValueError):
                continue

    def _learn(self, address: Address) -> None:
        if self._sentinel.add(address):
            logger.info("learned sentinel %s for %r", _text(address), self._service)
        self._monitor.watch(address)

    # -- opening and verifying server pools -----------------------------------

    async def _verify_role(self, conn: RedisConnection) -> None:
        await check_role(conn, self._role)

    async def _open(self, address: Address) -> _ServerPool:
        """A pool to ``address`` whose connections answered ROLE as expected."""
        current = self._current
        if (
            current is not None
            and not current.closed
            and current.address == address
            and (self._failover is None or self._failover.aborted)
        ):
            conn = await current.acquire()
            try:
                await check_role(conn, self._role)
            finally:
                current.release(conn)
            return current
        pool = _ServerPool(address, **self._pool_kwargs)
        try:
            await pool.fill()
            if pool.size == 0:  # minsize=0: verify with one connection anyway
                pool.release(await pool.acquire())
        except BaseException:
            pool.close()
            await pool.wait_closed()
            raise
        pool.owner = self
        return pool

    def _install(self, pool: _ServerPool, reason: str) -> None:
        loop = asyncio.get_running_loop()
        old = self._current
        failover, self._failover = self._failover, None
        self._current = pool
        if old is not None and old is not pool:
            self._fence(old, reason)
        if old is not None and old.address != pool.address:
            self.switch_count += 1
            self.last_switch_at = loop.time()
            held = loop.time() - failover.since if failover is not None else None
            self.last_hold_duration = held
            logger.info(
                "%s of %r switched %s -> %s (%s; commands held %s)",
                self._role, self._service, _text(old.address), _text(pool.address), reason,
                f"{held * 1000:.0f} ms" if held is not None else "0 ms",
            )
        elif old is None:
            logger.info("using %s %s of %r", self._role, _text(pool.address), self._service)
        if pool is not old:
            self._move_pubsub(pool)
        self._last_error = None
        self._active = pool
        if self._ready.done():
            self._ready = loop.create_future()
        self._ready.set_result(pool)

    def _fence(self, pool: _ServerPool, reason: str) -> None:
        """Close every connection to a replaced server, acquired ones included."""
        if pool.closed:
            return
        count = pool.size + (1 if pool.in_pubsub else 0)
        pool.owner = None
        pool.close()
        self._retired.append(pool)
        self._spawn(self._reap(pool))
        logger.info("fenced %d connections to old %s %s (%s)",
                    count, self._role, _text(pool.address), reason)

    async def _reap(self, pool: _ServerPool) -> None:
        await pool.wait_closed()
        if pool in self._retired:
            self._retired.remove(pool)

    # -- holding and resolving --------------------------------------------------

    def _hold(self) -> None:
        """Stop sending commands until the resolver installs a (new) pool."""
        self._active = None
        if self._ready.done():
            self._ready = asyncio.get_running_loop().create_future()
        if self._resolver is None or self._resolver.done():
            self._resolver = self._spawn(self._resolve())
        self._wake.set()

    async def _wait_active(self) -> _ServerPool:
        pool = self._active
        if pool is not None:
            return pool
        if self._closing:
            raise PoolClosedError(f"sentinel pool for {self._service!r} is closed")
        if self._resolver is None or self._resolver.done():
            self._hold()
        ready = self._ready
        try:
            async with _timeout(self._failover_timeout):
                return await asyncio.shield(ready)
        except asyncio.TimeoutError:
            raise FailoverTimeoutError(
                f"no usable {self._role} of {self._service!r} within "
                f"{self._failover_timeout}s (last error: {self._last_error})"
            ) from None

    def _may_retry(self) -> bool:
        return not self._closing and self._max_retries > 0

    async def _execute_retrying(
        self, command: bytes | str, args: tuple[Any, ...], kwargs: dict[str, Any], tries: int
    ) -> Any:
        while True:
            pool = await self._wait_active()
            try:
                return await pool.execute(command, *args, **kwargs)
            except RETRYABLE as exc:
                self._report_error(pool, exc)
                if exc.may_have_executed or self._closing or tries >= self._max_retries:
                    raise
                tries += 1

    def _report_error(self, pool: ConnectionsPool, exc: BaseException) -> None:
        """A command on ``pool`` failed with ``exc``: rediscover if it is the current one."""
        if self._closing or pool is not self._current or self._active is None:
            return
        if isinstance(exc, ConnectionForcedCloseError) and pool.closed:
            return
        self._last_error = exc
        logger.info("rediscovering %s of %r after %s from %s: %s", self._role, self._service,
                    type(exc).__name__, _text(pool.address), exc)
        self._hold()

    async def _resolve(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._failover_timeout
        while not self._closing:
            self._wake.clear()
            try:
                pool = await self._find()
            except (RedisError, OSError) as exc:
                self._last_error = exc
                logger.debug("no %s for %r yet: %s", self._role, self._service, exc)
                pool = None
            if pool is not None:
                if self._closing:
                    if pool is not self._current:
                        pool.close()
                        await pool.wait_closed()
                    return
                reason = "failover" if self._failover is not None else "rediscovery"
                self._install(pool, reason)
                return
            now = loop.time()
            if now >= deadline:
                failover = self._failover
                if failover is not None and not failover.aborted:
                    logger.warning(
                        "failover of %r not confirmed within %.1fs; trusting the sentinels",
                        self._service, self._failover_timeout)
                    failover.aborted = True
                    deadline = now + self._failover_timeout
                    continue
                error = self._last_error or MasterNotFoundError(
                    f"no usable {self._role} of {self._service!r}")
                logger.warning("giving up finding a %s of %r: %s", self._role, self._service,
                               error)
                self._failover = None
                if not self._ready.done():
                    self._ready.set_exception(error)
                    self._ready.exception()  # retrieved: nobody may be waiting
                return
            try:
                async with _timeout(self._poll_interval):
                    await self._wake.wait()
            except asyncio.TimeoutError:
                pass

    async def _find(self) -> _ServerPool | None:
        """One attempt at a pool to install; None to try again later."""
        loop = asyncio.get_running_loop()
        failover = self._failover
        if failover is not None and not failover.aborted:
            if failover.switch_to is not None and failover.switch_to != failover.old:
                return await self._open(failover.switch_to)
            if (
                self._early_release
                and failover.candidate is not None
                and failover.candidate != failover.old
            ):
                try:
                    return await self._open(failover.candidate)
                except RoleMismatchError:
                    pass  # not promoted yet
            if loop.time() - self._last_discovery < self._rediscover_interval * 2.5:
                return None
        else:
            wait = self._last_discovery + self._rediscover_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        self._last_discovery = loop.time()
        if self._role == "master":
            candidates, _views = await discover_master(self._sentinel, self._service)
        else:
            candidates = await discover_replicas(self._sentinel, self._service)
        last: BaseException | None = None
        for address in candidates:
            if failover is not None and not failover.aborted and address == failover.old:
                continue  # sentinels have not switched yet: keep holding
            try:
                return await self._open(address)
            except (RedisError, OSError) as exc:
                last = exc
        if last is not None:
            raise last
        return None

    # -- sentinel events ---------------------------------------------------------

    def _on_sentinel_state(self, address: Address, up: bool) -> None:
        if not up:
            logger.info("sentinel %s lost (event subscription down)", _text(address))
            return
        if address in self._seen_sentinels and self._active is not None:
            # Reconnected: events may have been missed; compare its view with ours.
            self._spawn(self._check_view(address))
        self._seen_sentinels.add(address)

    async def _check_view(self, sentinel: Address) -> None:
        try:
            reply = await self._sentinel.execute_on(
                sentinel, b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", self._service)
        except (RedisError, OSError):
            return
        if not reply or self._role != "master" or self._current is None:
            return
        host = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if (host, int(reply[1])) != self._current.address and self._active is not None:
            logger.info("sentinel %s names another master for %r: rediscovering",
                        _text(sentinel), self._service)
            self._hold()

    def _on_event(self, event: SentinelEvent) -> None:
        if event.kind == "+sentinel" and event.address is not None:
            if event.master_name == self._service:
                self._learn(event.address)
            return
        if event.master_name != self._service or self._closing or self._current is None:
            return
        if self._role == "master":
            self._on_master_event(event)
        else:
            self._on_replica_event(event)

    def _on_master_event(self, event: SentinelEvent) -> None:
        failover = self._failover
        ours = failover.old if failover is not None else self._current_address()
        if event.kind == "+switch-master":
            new = event.address
            if new is None or (failover is None and new == ours):
                return
            if failover is None or failover.switch_to != new:
                logger.info("+switch-master from sentinel %s: %r %s -> %s",
                            _text(event.source), self._service,
                            _text(event.master_address), _text(new))
            self._begin_failover(event)
            if self._failover is not None:
                self._failover.switch_to = new
                self._failover.started = True
            self._wake.set()
            return
        if event.master_address != ours:
            return  # about an earlier incarnation of the master
        if event.is_failover_start:
            self._begin_failover(event)
            failover = self._failover
            if failover is None:
                return
            if event.kind != "+odown":
                failover.started = True
                failover.aborted = False
            if event.instance_type in ("slave", "replica") and event.address is not None:
                failover.candidate = event.address
            if event.kind in PROMOTION_EVENTS and self._current is not None:
                self._fence(self._current, f"{event.kind} from sentinel {_text(event.source)}")
            self._wake.set()
        elif failover is not None and (
            event.is_failover_abort or (event.kind == "-odown" and not failover.started)
        ):
            if not failover.aborted:
                logger.info("failover of %r ended without a switch (%s): rechecking master",
                            self._service, event.kind)
            failover.aborted = True
            self._wake.set()
        elif (
            event.kind in ("+role-change", "+convert-to-slave")
            and event.instance_type == "master"
            and "slave" in event.payload.split("role is", 1)[-1]
            and self._active is not None
        ):
            logger.info("sentinel reports master %s of %r demoted: rediscovering",
                        _text(ours), self._service)
            self._hold()

    def _begin_failover(self, event: SentinelEvent) -> None:
        if self._failover is not None:
            return
        loop = asyncio.get_running_loop()
        self._failover = _Failover(
            old=self._current_address(), since=loop.time(), reason=event.kind,
        )
        logger.info("failover of %r master %s detected (%s from sentinel %s): holding commands",
                    self._service, _text(self._current_address()), event.kind,
                    _text(event.source))
        self._hold()

    def _on_replica_event(self, event: SentinelEvent) -> None:
        current = self._current_address()
        if self._active is None:
            return
        if (
            (event.kind == "+switch-master" and event.address == current)
            or (event.kind in ("+sdown", "+odown", "+role-change") and event.address == current)
        ):
            logger.info("replica %s of %r changed (%s): rediscovering",
                        _text(current), self._service, event.kind)
            self._hold()

    def _current_address(self) -> Address | None:
        pool = self._current
        if pool is None:
            return None
        address = pool.address
        return address if isinstance(address, tuple) else None

    async def _watchdog(self, interval: float) -> None:
        """Check ROLE of the server in use every ``interval`` s (events may be missed)."""
        while not self._closing:
            await asyncio.sleep(interval)
            pool = self._active
            if pool is None:
                continue
            try:
                reply = await pool.execute(b"ROLE", encoding=None)
            except (RedisError, OSError) as exc:
                self._report_error(pool, exc)
                continue
            actual = reply[0].decode() if reply and isinstance(reply[0], bytes) else "?"
            expected = "master" if self._role == "master" else "slave"
            if actual != expected:
                self._report_error(pool, RoleMismatchError(pool.address, self._role, actual))

    # -- AbcPool ------------------------------------------------------------------

    def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Run one command on the current server; returns an awaitable at once.

        While a failover is in progress the command waits (at most
        ``failover_timeout``) and then goes to the new master. Commands that
        failed without running (READONLY, refused connection) are retried
        after rediscovery; a command whose connection broke after it was sent
        raises :class:`~clustermgr.errors.ConnectionClosedError` with
        ``may_have_executed=True`` and is not retried.
        """
        pool = self._active
        if pool is None:
            if self._closing:
                raise PoolClosedError(f"sentinel pool for {self._service!r} is closed")
            if lookup_command(_PUBSUB_COMMANDS, command) is not None:
                return self.execute_pubsub(command, *args)
            return self._spawn(self._execute_retrying(command, args, kwargs, 0))
        return SentinelReply(self, pool, pool.execute(command, *args, **kwargs),
                             command, args, kwargs)

    def execute_pubsub(self, command: bytes | str, *channels: Any) -> Awaitable[Any]:
        """(Un)subscribe; subscriptions follow the master across failovers.

        The same Channel objects keep delivering after a failover (messages
        published while the subscription moves may be missed).
        """
        if self._closing:
            raise PoolClosedError(f"sentinel pool for {self._service!r} is closed")
        name = lookup_command(_PUBSUB_COMMANDS, command)
        if name is None:
            raise ValueError(f"{command!r} is not a pub/sub (un)subscribe command")
        registry_name, subscribing = _PUBSUB_REGISTRY[name]
        if subscribing and not channels:
            raise TypeError(f"{name.decode()} needs at least one channel")
        registry = self._subscriptions[registry_name]
        targets: list[Any] = []
        for item in channels:
            if isinstance(item, AbcChannel):
                channel = item
            elif isinstance(item, (bytes, str)):
                key = item.encode() if isinstance(item, str) else item
                channel = registry.get(key) or Channel(key, is_pattern=registry_name == "patterns")
            else:
                raise TypeError(f"channel must be bytes, str or a Channel, not {item!r}")
            if subscribing:
                registry[channel.name] = channel
                targets.append(_Relay(channel))
            else:
                targets.append(channel.name)
        if not subscribing:
            for key in targets or list(registry):
                gone = registry.pop(key, None)
                if gone is not None:
                    gone.close()
        pool = self._active
        if pool is not None:
            return ConnectionsPool.execute_pubsub(pool, name, *targets)
        return self._spawn(self._pubsub_later(name, targets))

    async def _pubsub_later(self, command: bytes, targets: list[Any]) -> Any:
        pool = await self._wait_active()
        return await ConnectionsPool.execute_pubsub(pool, command, *targets)

    def _move_pubsub(self, pool: _ServerPool) -> None:
        for registry_name, registry in self._subscriptions.items():
            if registry:
                relays = [_Relay(channel) for channel in registry.values()]
                command = _SUBSCRIBE_FOR[registry_name]
                self._spawn(self._subscribe_moved(pool, command, relays))

    async def _subscribe_moved(self, pool: _ServerPool, command: bytes, relays: list[Any]) -> None:
        try:
            await ConnectionsPool.execute_pubsub(pool, command, *relays)
        except (RedisError, OSError) as exc:
            if not pool.closed:
                logger.warning("could not move %d subscriptions to %s: %s",
                               len(relays), _text(pool.address), exc)
            return
        logger.info("moved %d subscriptions of %r to %s", len(relays), self._service,
                    _text(pool.address))

    def get_connection(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection | None:
        """A free connection to the current server, or ``None`` (also while holding)."""
        pool = self._active
        return pool.get_connection(command, args) if pool is not None else None

    async def acquire(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection:
        """Take a connection to the current server for exclusive use.

        Waits during a failover. The connection is closed if its server is
        replaced (fenced) while you hold it: its next command fails with
        :class:`~clustermgr.errors.ConnectionForcedCloseError`.
        """
        tries = 0
        while True:
            pool = self._active or await self._wait_active()
            try:
                conn = await pool.acquire(command, args)
            except (ConnectError, RoleMismatchError, PoolClosedError) as exc:
                self._report_error(pool, exc)
                if self._closing or tries >= self._max_retries:
                    raise
                tries += 1
                continue
            self._acquired[conn] = pool
            return conn

    def release(self, conn: AbcConnection) -> None:
        """Give back a connection from :meth:`acquire`."""
        pool = self._acquired.pop(conn, None)
        if pool is None:
            raise ValueError(f"{conn!r} was not acquired from this pool")
        if pool.closed:
            conn.close()
            return
        pool.release(conn)

    # -- pub/sub state ------------------------------------------------------------

    @property
    def pubsub_channels(self) -> Mapping[bytes, AbcChannel]:
        """Channels subscribed through this pool (kept across failovers)."""
        return MappingProxyType(self._subscriptions["channels"])

    @property
    def pubsub_patterns(self) -> Mapping[bytes, AbcChannel]:
        """Patterns subscribed through this pool (kept across failovers)."""
        return MappingProxyType(self._subscriptions["patterns"])

    @property
    def in_pubsub(self) -> int:
        """Number of subscriptions held by the pool."""
        return sum(len(r) for r in self._subscriptions.values())

    # -- lifecycle -------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Close the pool: server connections, sentinel connections, event subscriptions."""
        if self._closing:
            return
        self._closing = True
        self._active = None
        self._monitor.close()
        self._sentinel.close()
        if self._current is not None:
            self._current.owner = None
            self._current.close()
        for task in self._tasks:
            task.cancel()
        if not self._ready.done():
            self._ready.set_exception(
                PoolClosedError(f"sentinel pool for {self._service!r} was closed"))
            self._ready.exception()
        for registry in self._subscriptions.values():
            for channel in registry.values():
                channel.close()
            registry.clear()

    async def wait_closed(self) -> None:
        """Wait until every connection and background task has finished."""
        await self._monitor.wait_closed()
        await self._sentinel.wait_closed()
        pools = [p for p in (self._current, *self._retired) if p is not None]
        await asyncio.gather(*(p.wait_closed() for p in pools))
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- properties ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    @property
    def address(self) -> Any:
        """``(host, port)`` of the server in use (``None`` before the first one)."""
        return self._current.address if self._current is not None else None

    @property
    def service(self) -> str:
        """The sentinel service (master) name."""
        return self._service

    @property
    def role(self) -> str:
        """``"master"`` or ``"replica"``."""
        return self._role

    @property
    def holding(self) -> bool:
        """True while commands wait for a failover or a rediscovery."""
        return self._active is None and not self._closing

    @property
    def sentinel(self) -> RedisSentinel:
        """The sentinel client (its ``addresses`` include learned sentinels)."""
        return self._sentinel

    @property
    def db(self) -> int:
        """The selected database."""
        return self._db

    @property
    def encoding(self) -> str | None:
        """The default reply codec."""
        return self._encoding

    @property
    def size(self) -> int:
        """Connections open to the server in use."""
        return self._current.size if self._current is not None else 0

    @property
    def freesize(self) -> int:
        """Connections to the server in use that are not acquired."""
        return self._current.freesize if self._current is not None else 0

    @property
    def in_transaction(self) -> bool:
        """Always False: transactions run on acquired connections."""
        return False

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("holding" if self._active is None else "ready")
        return (f"<SentinelPool {self._service!r} {self._role}="
                f"{_text(self.address) if self.address else '?'} {state}>")


async def create_sentinel_pool(
    sentinels: Iterable[Any],
    service: str,
    *,
    role: str = "master",
    username: str | None = None,
    password: str | None = None,
    sentinel_username: str | None = None,
    sentinel_password: str | None = None,
    minsize: int = 1,
    maxsize: int = 10,
    **kwargs: Any,
) -> SentinelPool:
    """Discover the master (or a replica) of ``service`` and return a ready pool.

    ``sentinels`` are ``(host, port)`` pairs or ``redis://`` URLs of sentinels;
    ``username``/``password`` are the data nodes' credentials,
    ``sentinel_username``/``sentinel_password`` the sentinels'. Other keyword
    arguments are those of :class:`SentinelPool` (``ssl``, ``sentinel_ssl``,
    ``db``, ``encoding``, ``failover_timeout``, ...).

    Fails fast with a distinct error: :class:`~.errors.UnknownServiceError`,
    :class:`~.errors.SentinelsUnreachableError`,
    :class:`~.errors.SentinelAuthError`, :class:`~clustermgr.errors.AuthError`
    (data node credentials) or :class:`~clustermgr.errors.MasterNotFoundError`.
    """
    pool = SentinelPool(
        sentinels, service, role=role, username=username, password=password,
        sentinel_username=sentinel_username, sentinel_password=sentinel_password,
        minsize=minsize, maxsize=maxsize, **kwargs,
    )
    try:
        await pool._start()
    except BaseException:
        pool.close()
        await pool.wait_closed()
        raise
    return pool

