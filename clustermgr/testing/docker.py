"""Addresses and readiness checks of the ``docker/docker-compose.yml`` topologies.

Used by the ``docker_redis`` fixture of :mod:`clustermgr.testing.plugin` when
pytest runs with ``--docker``.  Nothing here talks to Docker itself; starting
and stopping the stack is done by pytest-docker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._wait import wait_until
from .resp import as_list, as_str, execute, parse_info

__all__ = ["DockerTopologies"]

_HOST = "127.0.0.1"


def _default_cluster() -> list[tuple[str, int]]:
    return [(_HOST, port) for port in range(7000, 7006)]


def _default_sentinels() -> list[tuple[str, int]]:
    return [(_HOST, port) for port in range(26379, 26382)]


@dataclass(frozen=True)
class DockerTopologies:
    """Where the compose services listen (defaults match ``docker-compose.yml``)."""

    standalone: tuple[str, int] = (_HOST, 7379)
    cluster_startup_nodes: list[tuple[str, int]] = field(default_factory=_default_cluster)
    sentinel_addresses: list[tuple[str, int]] = field(default_factory=_default_sentinels)
    sentinel_service: str = "mymaster"
    sentinel_data_nodes: list[tuple[str, int]] = field(
        default_factory=lambda: [(_HOST, 7100), (_HOST, 7101)]
    )

    def _standalone_ok(self) -> bool:
        return execute(self.standalone, "PING", timeout=1.0) == "PONG"

    def _cluster_ok(self) -> bool:
        for address in self.cluster_startup_nodes:
            info = parse_info(as_str(execute(address, "CLUSTER", "INFO", timeout=1.0)))
            if info.get("cluster_state") != "ok":
                return False
        return True

    def _sentinels_ok(self) -> bool:
        want_others = len(self.sentinel_addresses) - 1
        want_replicas = len(self.sentinel_data_nodes) - 1
        for address in self.sentinel_addresses:
            items = as_list(execute(address, "SENTINEL", "MASTER", self.sentinel_service))
            state = {as_str(items[i]): as_str(items[i + 1]) for i in range(0, len(items) - 1, 2)}
            if state.get("flags") != "master":
                return False
            if int(state.get("num-other-sentinels", "0")) < want_others:
                return False
            if int(state.get("num-slaves", "0")) < want_replicas:
                return False
        return True

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until all three topologies are healthy (bounded by ``timeout``)."""
        wait_until(self._standalone_ok, timeout=timeout, interval=0.5, what="docker standalone")
        wait_until(self._cluster_ok, timeout=timeout, interval=0.5, what="docker cluster")
        wait_until(self._sentinels_ok, timeout=timeout, interval=0.5, what="docker sentinels")
