"""Real-server test topologies for clustermgr: local ``redis-server`` processes.

Start a standalone server, a Redis Cluster or a Sentinel group on 127.0.0.1
with free ports and temp dirs, break them (kill, pause, failover, reshard)
and stop them cleanly; put a :class:`FaultProxy` in front of a node to
drop, stall, delay or cut its connections.  Also a pytest plugin
(:mod:`clustermgr.testing.plugin`).
"""

from __future__ import annotations

from ._wait import wait_until
from .binaries import ENV_VAR, find_server_binary, server_version
from .cluster import SLOT_COUNT, LocalCluster, SlotMigration, SlotRange
from .docker import DockerTopologies
from .errors import ServerBinaryNotFound, ServerStartError, TestingError, TopologyTimeout
from .process import LocalServer, config_lines, find_free_port, port_is_free
from .proxy import DIRECTIONS, Direction, FaultProxy
from .resp import RespConnection, RespError, RespProtocolError, RespValue, execute
from .sentinel import LocalSentinelGroup
from .standalone import LocalStandalone
from .tls import (
    TlsFiles,
    client_context,
    make_certificates,
    tls_config,
    tls_only_config,
    tls_supported,
)
from .topology import Topology

__all__ = [
    "DIRECTIONS",
    "ENV_VAR",
    "SLOT_COUNT",
    "Direction",
    "DockerTopologies",
    "FaultProxy",
    "LocalCluster",
    "LocalSentinelGroup",
    "LocalServer",
    "LocalStandalone",
    "RespConnection",
    "RespError",
    "RespProtocolError",
    "RespValue",
    "ServerBinaryNotFound",
    "ServerStartError",
    "SlotMigration",
    "SlotRange",
    "TestingError",
    "TlsFiles",
    "Topology",
    "TopologyTimeout",
    "client_context",
    "config_lines",
    "execute",
    "find_free_port",
    "find_server_binary",
    "make_certificates",
    "port_is_free",
    "server_version",
    "tls_config",
    "tls_only_config",
    "tls_supported",
    "wait_until",
]
