"""SentinelPool: an AbcPool for the master (or the replicas) of a Sentinel-managed service.

This module is the pool surface: ``execute``, ``acquire``/``release``,
pub/sub delegation, ``close``. Which server a command goes to, and when, is
decided by :class:`~.failover.Follower` (failover following, fencing,
rediscovery, replica rotation); subscriptions move with :mod:`.pubsub`.

:meth:`SentinelPool.execute` returns an :class:`asyncio.Future` (so
``asyncio.gather`` does not wrap it in a Task). While nothing is happening it
is the server pool's ``execute`` plus one future and one done-callback; a
command that fails because the server went away (READONLY, a refused or
closed connection, a wrong ROLE) is retried on the next server when it
provably did not run, or when it is read-only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from ..abc import AbcConnection
from ..address import check_db
from ..bounds import DEFAULT, READ_TIMEOUT, ROUTED_CONNECT_TIMEOUT, Default, resolve
from ..commands import CommandTable
from ..connection import RedisConnection
from ..credentials import CredentialProvider, auth_all
from ..errors import (
    ConnectError,
    ConnectionClosedError,
    PoolClosedError,
    ReadOnlyError,
)
from ..options import InvalidOptionError, check_class, check_options
from ..pool import ConnectionsPool
from ..remap import AddressRemap
from ..replybound import DEFAULT_MAX_REPLY_SIZE
from ..routing import Action, Budget, Classified, Router
from ..stats import NodeStats
from ..subscriptions import SubscriptionSet, SubscriptionViews
from ..tasks import failed
from ._common import address_text
from .errors import RoleMismatchError
from .failover import Follower
from .hooks import PoolHooks
from .master import MasterFollower
from .pubsub import SentinelPubSub, is_pubsub_command
from .replicas import ReplicaFollower
from .sentinel import RedisSentinel
from .servers import ServerPool

__all__ = ["SentinelPool", "create_sentinel_pool"]

_COMMANDS = CommandTable.builtin()


class SentinelPool(SubscriptionViews, Router):
    """Connections to the master (or the replicas) of a Sentinel-managed service.

    Create with :func:`create_sentinel_pool`. With ``role="replica"`` commands
    are spread round-robin over every healthy replica.
    """

    KIND = "sentinel"
    #: After these the server may have changed: wait for the Follower's new
    #: route. Retried when the command provably did not run, or is read-only.
    ERROR_ACTIONS = {
        ReadOnlyError: Action.REFRESH,
        ConnectionClosedError: Action.REFRESH,
        ConnectError: Action.REFRESH,
        RoleMismatchError: Action.REFRESH,
        PoolClosedError: Action.REFRESH,
    }

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
        create_connection_timeout: float | Default | None = DEFAULT,
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
        read_timeout: float | Default | None = DEFAULT,
        address_remap: AddressRemap | None = None,
        credential_provider: CredentialProvider | None = None,
        max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
    ) -> None:
        if role not in ("master", "replica", "slave"):
            raise InvalidOptionError(
                f"role must be 'master' or 'replica', not {role!r}", option="role"
            )
        if not isinstance(service, str) or not service:
            raise InvalidOptionError(
                f"service must be a non-empty str, not {service!r}", option="service"
            )
        check_options(
            db=db, username=username, password=password, ssl=ssl, encoding=encoding,
            minsize=minsize, maxsize=maxsize, create_connection_timeout=create_connection_timeout,
            acquire_timeout=acquire_timeout, name=name, sentinel_username=sentinel_username,
            sentinel_password=sentinel_password, sentinel_ssl=sentinel_ssl,
            sentinel_timeout=sentinel_timeout, failover_timeout=failover_timeout,
            rediscover_interval=rediscover_interval, poll_interval=poll_interval,
            max_retries=max_retries, early_release=early_release,
            role_check_interval=role_check_interval, read_timeout=read_timeout,
            max_reply_size=max_reply_size,
            address_remap=address_remap, credential_provider=credential_provider,
            parser=parser,
        )
        check_class("connection_cls", connection_cls, RedisConnection)
        connect_bound = resolve(
            "create_connection_timeout", create_connection_timeout, ROUTED_CONNECT_TIMEOUT)
        read_bound = resolve("read_timeout", read_timeout, READ_TIMEOUT)
        super().__init__(retry_timeout=None, max_failures=max_retries, max_redirects=None)
        self._service = service
        self._role = "master" if role == "master" else "replica"
        self._db = db or 0
        self._encoding = encoding
        #: The route, set by the Follower: the pool to use (None: holding) and,
        #: for more than one healthy replica, the rotation to spread over.
        self._active: ServerPool | None = None
        self._rotation: tuple[ServerPool, ...] = ()
        self._next = 0
        if self._role != "master":  # READONLY on a replica: a write sent there
            self._actions = self._actions.with_entries({ReadOnlyError: Action.FAIL})
        self._sentinel = RedisSentinel(
            sentinels, username=sentinel_username, password=sentinel_password,
            ssl=sentinel_ssl, timeout=sentinel_timeout, address_remap=address_remap,
        )
        hooks: PoolHooks[ServerPool] = PoolHooks(
            events=self.events, set_route=self._set_route,
            move_pubsub=lambda pool: self._pubsub.move_to(pool),
            adopt=self._adopt, forget=self._forget, execute_pubsub=self.execute_pubsub,
        )
        follow: dict[str, Any] = (
            {"early_release": early_release} if self._role == "master" else {})
        follower_cls = MasterFollower if self._role == "master" else ReplicaFollower
        # Shared with the Follower's server pools: select() changes "db" for those opened later.
        self._pool_kwargs: dict[str, Any] = {
            "db": db, "username": username, "password": password, "ssl": ssl,
            "encoding": encoding, "minsize": minsize, "maxsize": maxsize,
            "parser": parser, "create_connection_timeout": connect_bound,
            "acquire_timeout": acquire_timeout, "connection_cls": connection_cls,
            "name": name, "read_timeout": read_bound,
            "credential_provider": credential_provider, "max_reply_size": max_reply_size,
        }
        self._follower: Follower = follower_cls(
            hooks, self._sentinel, service=service, pool_kwargs=self._pool_kwargs,
            failover_timeout=failover_timeout, rediscover_interval=rediscover_interval,
            poll_interval=poll_interval, role_check_interval=role_check_interval,
            tasks=self._tasks, **follow,
        )
        self._pubsub = SentinelPubSub(
            service, active=self._route_pubsub, wait_active=self._follower.wait_active,
            tasks=self._tasks,
        )

    # -- the route (set by the Follower) ---------------------------------------------

    def _set_route(self, active: ServerPool | None, rotation: tuple[ServerPool, ...]) -> None:
        self._active = active
        self._rotation = rotation

    def _route_pubsub(self) -> ConnectionsPool | None:
        return self._active

    def _target(self) -> ServerPool | None:
        pool = self._active
        rotation = self._rotation
        if pool is not None and rotation:
            self._next = index = (self._next + 1) % len(rotation)
            pool = rotation[index]
        return pool

    # -- routing (see clustermgr.routing) ---------------------------------------------

    def _route(self, c: Classified) -> ServerPool | None:
        return self._target()

    async def _wait_route(self, c: Classified, budget: Budget, why: str) -> None:
        await self._follower.wait_active()

    def _observe(self, c: Classified, pool: ConnectionsPool | None, error: BaseException) -> None:
        if pool is not None:
            self._follower.report_error(pool, error)

    def _refuse(self, c: Classified, error: BaseException) -> BaseException:
        return error  # the connection's own error: ``may_have_executed`` True

    def _closed_error(self) -> PoolClosedError:
        return PoolClosedError(f"sentinel pool for {self._service!r} is closed")

    # -- execute -----------------------------------------------------------------------

    def execute(self, command: bytes | str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Run one command on the current server; returns a future at once.

        While a failover is in progress the command waits (at most
        ``failover_timeout``) and then goes to the new master. Commands that
        failed without running (READONLY, refused connection, fenced before
        being written) and read-only commands are retried after
        rediscovery; a write whose connection broke after it was sent raises
        :class:`~clustermgr.errors.ConnectionClosedError` with
        ``may_have_executed=True`` and is not retried. Once closed: a future
        failed with :class:`PoolClosedError`.
        """
        pool = self._active
        if pool is None:
            if self._closed:
                return failed(self._closed_error())
            if is_pubsub_command(command):
                return asyncio.ensure_future(self.execute_pubsub(command, *args))
        else:
            rotation = self._rotation
            if rotation:
                self._next = index = (self._next + 1) % len(rotation)
                pool = rotation[index]
        info = _COMMANDS.lookup(command)
        return self._send_fast(pool, info, command, args, kwargs, None)  # type: ignore[return-value]

    # -- pub/sub --------------------------------------------------------------------

    def execute_pubsub(self, command: bytes | str, *channels: Any) -> Awaitable[Any]:
        """(Un)subscribe; subscriptions follow the server across failovers.

        The same Channel objects keep delivering after a failover (messages
        published while the subscription moves may be missed).
        """
        if self._closed:
            return failed(self._closed_error())
        return self._pubsub.execute(command, *channels)

    @property
    def _subscription_set(self) -> SubscriptionSet:
        return self._pubsub.subscriptions

    # -- exclusive connections ---------------------------------------------------------

    def get_connection(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection | None:
        """A free connection to the current server, or ``None`` (also while holding)."""
        pool = self._target()
        return pool.get_connection(command, args) if pool is not None else None

    async def acquire(
        self, command: bytes | str | None = None, args: Sequence[Any] = ()
    ) -> AbcConnection:
        """Take a connection to the current server for exclusive use.

        Waits during a failover. The connection is closed if its server is
        replaced (fenced) while you hold it: a command in flight fails with
        :class:`~clustermgr.errors.ConnectionForcedCloseError`, the next one
        with :class:`~clustermgr.errors.ConnectionClosedError` (not executed).
        """
        info = _COMMANDS.lookup(command) if command is not None else None
        return await self._acquire_routed(
            Classified(self, command or b"", tuple(args), {}, info, None)
        )

    # -- lifecycle -------------------------------------------------------------------

    async def _start(self) -> None:
        await self._follower.start()

    def _start_lazily(self) -> None:
        self._follower.start_lazily()

    async def auth(self, password: str, username: str | None = None) -> bool:
        """``AUTH`` every connection of the server pool(s) in use (ACL ``username``
        optional); server pools opened later (after a failover) use them too.

        A refusal (:class:`~clustermgr.errors.AuthError`) is raised once every
        server answered, and server pools opened later keep the old credentials.
        """
        await auth_all(self._follower.serving_now(), password, username)
        self._pool_kwargs.update(username=username, password=password)
        return True

    async def reauthenticate(self) -> bool:
        """Re-authenticate the server pool(s) in use with the credential provider's answer.

        See :meth:`ConnectionsPool.reauthenticate`; pools opened later ask the
        provider themselves.
        """
        await asyncio.gather(*(p.reauthenticate() for p in self._follower.serving_now()))
        return True

    def _hold(self) -> None:
        """Hold commands and rediscover (as after a connection error)."""
        self._follower.hold()

    def _shutdown(self) -> None:
        self._set_route(None, ())
        self._follower.close()
        self._sentinel.close()
        self._pubsub.close()

    async def _drain(self) -> None:
        await self._follower.wait_closed()
        await self._sentinel.wait_closed()

    # -- properties ------------------------------------------------------------------

    @property
    def address(self) -> Any:
        """``(host, port)`` of the server in use (for replicas: the first of the rotation)."""
        current = self._follower.current
        return current.address if current is not None else None

    @property
    def replica_addresses(self) -> list[Any]:
        """``role="replica"``: the replicas commands are spread over."""
        return [p.address for p in self._follower.replicas]

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
        return self._follower.holding

    @property
    def switch_count(self) -> int:
        """Number of master (or replica) changes followed."""
        return self._follower.switches.count

    @property
    def last_switch_at(self) -> float | None:
        """Loop time of the last change."""
        return self._follower.switches.last_at

    @property
    def last_hold_duration(self) -> float | None:
        """How long commands were held for the last change (seconds)."""
        return self._follower.switches.last_hold

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

    async def select(self, db: int) -> bool:
        """Switch the server pools in use, and those opened later (a failover), to ``db``.

        If the server refuses ``db`` (out of range), its error is raised and
        the pool stays on its db.
        """
        check_db(db)
        pools = self._serving()
        if pools:
            await pools[0].select(db)  # the server's verdict, before the others switch
            await asyncio.gather(*(pool.select(db) for pool in pools[1:]))
        self._db = self._pool_kwargs["db"] = db
        return True

    def _serving(self) -> list[ServerPool]:
        follower = self._follower
        if follower.replicas:
            return list(follower.replicas)
        return [follower.current] if follower.current is not None else []

    # -- events and stats --------------------------------------------------------------

    def _node_stats(self) -> list[NodeStats]:
        role = "master" if self._role == "master" else "replica"
        return [pool.node_stats(role=role) for pool in self._serving()]

    def _stats_counters(self) -> dict[str, int]:
        return {"failovers": self._follower.switches.count}

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("holding" if self._active is None else "ready")
        return (f"<SentinelPool {self._service!r} {self._role}="
                f"{address_text(self.address) if self.address else '?'} {state}>")


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
    lazy: bool = False,
    **kwargs: Any,
) -> SentinelPool:
    """Discover the master (or the replicas) of ``service`` and return a ready pool.

    ``sentinels`` are ``(host, port)`` pairs or ``redis://`` URLs of sentinels;
    ``username``/``password`` are the data nodes' credentials,
    ``sentinel_username``/``sentinel_password`` the sentinels'. Other keyword
    arguments are those of :class:`SentinelPool` (``ssl``, ``sentinel_ssl``,
    ``db``, ``encoding``, ``failover_timeout``, ``early_release``,
    ``address_remap`` for the addresses sentinels name, ...).
    ``create_connection_timeout`` (default 2 s: connect, handshake and ROLE
    check) and ``read_timeout`` (default 10 s, the reply bound) apply to every
    server connection, ``None`` turning either off (see :mod:`clustermgr.bounds`).
    ``minsize``/``maxsize`` apply per server (per replica for ``role="replica"``).
    With ``lazy`` nothing is asked or opened here: the first command
    discovers (and, if no server can be found within ``failover_timeout``,
    fails with one of the errors below; the next command tries again).

    Fails fast with a distinct error: :class:`~.errors.UnknownServiceError`,
    :class:`~.errors.SentinelsUnreachableError`,
    :class:`~.errors.SentinelAuthError`, :class:`~clustermgr.errors.AuthError`
    (data node credentials) or :class:`~clustermgr.errors.MasterNotFoundError`.
    While the sentinels know the service but name no usable server yet (a
    failover: master down or its link still ``disconnected``, a sentinel failing
    it over, no healthy replica listed) creation waits for one, bounded by
    ``failover_timeout`` (then :class:`~.errors.FailoverTimeoutError`).
    """
    check_options(lazy=lazy)
    pool = SentinelPool(
        sentinels, service, role=role, username=username, password=password,
        sentinel_username=sentinel_username, sentinel_password=sentinel_password,
        minsize=minsize, maxsize=maxsize, **kwargs,
    )
    if lazy:
        pool._start_lazily()
        return pool
    try:
        await pool._start()
    except BaseException:
        pool.close()
        await pool.wait_closed()
        raise
    return pool
