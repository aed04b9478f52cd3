"""A cluster pool's options, checked and resolved once, before anything connects.

:func:`cluster_settings` is the one place that turns what
:func:`~clustermgr.cluster.create_cluster_pool` was given into a
:class:`ClusterSettings`: every option checked (typed errors naming the
option), the startup URLs' credentials applied to every node, the bounds
resolved (``None`` for no bound, the defaults for what was left out), TLS
decided by the one rule of :mod:`clustermgr.tlsopts`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..address import check_cluster_startup, parse_address, shared_options
from ..bounds import READ_TIMEOUT, ROUTED_CONNECT_TIMEOUT, Default, resolve, within
from ..connection import RedisConnection
from ..credentials import CredentialProvider
from ..options import InvalidOptionError, OptionTypeError, check_class, check_options
from ..pool import ConnectionsPool
from ..remap import AddressRemap
from ..tlsopts import resolve_tls
from .refresh import RefreshOptions
from .topology import Address

__all__ = ["READ_FROM", "ClusterSettings", "cluster_settings"]

READ_FROM = ("master", "replica", "prefer_replica", "nearest", "az_affinity")
"""Accepted values of ``read_from``."""


@dataclass(frozen=True)
class ClusterSettings:
    """What a :class:`~clustermgr.cluster.ClusterPool` runs with (see :func:`cluster_settings`)."""

    startup: list[Address]
    tls: bool
    read_from: str
    client_az: str | None
    remap: AddressRemap | None
    refresh: RefreshOptions
    retry_timeout: float
    max_redirects: int
    encoding: str | None
    pool_cls: type[ConnectionsPool]
    #: Every node pool's options (credentials, TLS, sizes, bounds).
    pool_kwargs: dict[str, Any]
    #: The options of the connections that read slot maps.
    conn_kwargs: dict[str, Any]


def cluster_settings(
    startup_nodes: Iterable[Any],
    *,
    username: str | None,
    password: str | None,
    ssl: Any,
    encoding: str | None,
    minsize: int,
    maxsize: int,
    read_from: str,
    max_redirects: int,
    retry_timeout: float,
    refresh: RefreshOptions | None,
    connect_timeout: float | Default | None,
    pool_cls: type[ConnectionsPool],
    connection_cls: type[RedisConnection] | None,
    read_timeout: float | Default | None,
    address_remap: AddressRemap | None,
    credential_provider: CredentialProvider | None,
    client_az: str | None,
    max_reply_size: int | None,
) -> ClusterSettings:
    """Check every option and resolve it (see the module docstring)."""
    check_options(
        username=username, password=password, ssl=ssl, encoding=encoding, minsize=minsize,
        maxsize=maxsize, max_redirects=max_redirects, retry_timeout=retry_timeout,
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        max_reply_size=max_reply_size,
        address_remap=address_remap, credential_provider=credential_provider,
        client_az=client_az,
    )
    check_class("pool_cls", pool_cls, ConnectionsPool)
    check_class("connection_cls", connection_cls, RedisConnection)
    if refresh is not None and not isinstance(refresh, RefreshOptions):
        raise OptionTypeError(
            f"refresh must be a RefreshOptions or None, got {refresh!r}", option="refresh"
        )
    if read_from not in READ_FROM:
        raise InvalidOptionError(
            f"read_from must be one of {READ_FROM}, got {read_from!r}", option="read_from"
        )
    if (read_from == "az_affinity") != (client_az is not None) or client_az == "":
        raise InvalidOptionError(
            "read_from='az_affinity' needs client_az (the client's availability zone), "
            f"and client_az applies only to it (got read_from={read_from!r}, "
            f"client_az={client_az!r})", option="client_az",
        )
    nodes = [parse_address(a) for a in startup_nodes]
    if not nodes:
        raise InvalidOptionError(
            "startup_nodes must name at least one node", option="startup_nodes"
        )
    check_cluster_startup(nodes)
    # Credentials and options of startup URLs apply to every node.
    given = shared_options(
        nodes, username=username, password=password, encoding=encoding, name=None
    )
    username, password, encoding = given["username"], given["password"], given["encoding"]
    connect_bound = resolve("connect_timeout", connect_timeout, ROUTED_CONNECT_TIMEOUT)
    # A stalled node connection is aborted within a command's whole budget.
    read_bound = within(resolve("read_timeout", read_timeout, READ_TIMEOUT), retry_timeout)
    tls = resolve_tls(nodes, ssl)  # rediss:// startup nodes: TLS for every node
    return ClusterSettings(
        startup=[target for target in (n.target for n in nodes) if isinstance(target, tuple)],
        tls=bool(tls), read_from=read_from, client_az=client_az, remap=address_remap,
        refresh=refresh or RefreshOptions(), retry_timeout=retry_timeout,
        max_redirects=max_redirects, encoding=encoding, pool_cls=pool_cls,
        pool_kwargs=dict(
            username=username, password=password, ssl=tls, encoding=encoding,
            minsize=minsize, maxsize=maxsize, create_connection_timeout=connect_bound,
            connection_cls=connection_cls, read_timeout=read_bound, name=given["name"],
            credential_provider=credential_provider, max_reply_size=max_reply_size,
        ),
        conn_kwargs=dict(
            username=username, password=password, ssl=tls, timeout=connect_bound,
            credential_provider=credential_provider,
        ),
    )
