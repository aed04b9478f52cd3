"""pytest plugin: fixtures that launch real Redis topologies on 127.0.0.1.

Registered through the ``pytest11`` entry point ``clustermgr``.  Importing it
is cheap and starts nothing; processes start when a fixture is first used.

Session-scoped, shared (do not kill/failover/reshard them):
``redis_standalone``, ``redis_cluster``, ``redis_sentinel``.

Function-scoped factories for destructive tests (everything they start is
stopped at teardown): ``local_standalone_factory``, ``local_cluster_factory``,
``local_sentinel_factory`` -- each returns ``factory(**constructor_kwargs)``.

``--docker``: tests marked ``@pytest.mark.docker`` run, using the
``docker_redis`` fixture (``docker/docker-compose.yml`` via pytest-docker);
without it they are skipped.

``--load`` (or ``CLUSTERMGR_LOAD=1``): tests marked ``@pytest.mark.fault``
(failover, fencing, resharding) run while CPU hogs spin on every core
(:class:`clustermgr.testing.load.CpuHogs`, ``--load-hogs N`` to choose how
many), so the timing windows of a busy host open.  Without it the marker
changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from .cluster import LocalCluster
    from .docker import DockerTopologies
    from .load import CpuHogs
    from .sentinel import LocalSentinelGroup
    from .standalone import LocalStandalone
    from .topology import Topology

__all__ = [
    "LOAD_ENV_VAR",
    "clustermgr_load",
    "docker_redis",
    "local_cluster_factory",
    "local_sentinel_factory",
    "local_standalone_factory",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_report_header",
    "redis_cluster",
    "redis_sentinel",
    "redis_standalone",
]

_DOCKER_MARKER = "docker: uses the docker/ compose topologies (opt-in with --docker)"
_FAULT_MARKER = "fault: failover/fencing/resharding test; runs under CPU hogs with --load"

LOAD_ENV_VAR = "CLUSTERMGR_LOAD"
"""Environment variable that turns the load mode on (any value but ``""``/``0``)."""

_DEFAULT_TIMEOUT = 300.0

_T = TypeVar("_T", bound="Topology")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--docker`` and ``--docker-compose-file``."""
    group = parser.getgroup("clustermgr", "clustermgr Redis test topologies")
    group.addoption(
        "--docker",
        action="store_true",
        default=False,
        help="run tests marked 'docker' against docker/docker-compose.yml (needs pytest-docker)",
    )
    group.addoption(
        "--docker-compose-file",
        default=None,
        help="compose file for --docker (default: <rootdir>/docker/docker-compose.yml)",
    )
    group.addoption(
        "--load",
        action="store_true",
        default=os.environ.get(LOAD_ENV_VAR, "") not in ("", "0"),
        help=f"run tests marked 'fault' under CPU hogs (also ${LOAD_ENV_VAR}=1)",
    )
    group.addoption(
        "--load-hogs",
        type=int,
        default=None,
        help="number of CPU hog processes in load mode (default: one per core)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``docker`` and ``fault`` markers."""
    config.addinivalue_line("markers", _DOCKER_MARKER)
    config.addinivalue_line("markers", _FAULT_MARKER)


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say so when the load mode is on."""
    if not config.getoption("--load"):
        return None
    hogs = config.getoption("--load-hogs")
    count = "one per core" if hogs is None else str(hogs)
    return f"clustermgr load mode: CPU hogs ({count}) during tests marked 'fault'"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``docker``-marked tests unless ``--docker`` was given."""
    if config.getoption("--docker"):
        return
    skip = pytest.mark.skip(reason="docker test: run with --docker")
    for item in items:
        if item.get_closest_marker("docker") is not None:
            item.add_marker(skip)


# -- load mode -----------------------------------------------------------------


def _hog_seconds(item: pytest.Item) -> float:
    """The hogs' own deadline: the test's timeout plus a margin."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        timeout = float(marker.args[0])
    else:
        try:  # pytest-timeout's ini value, when that plugin is installed
            configured = item.config.getini("timeout")
        except ValueError:
            configured = None
        timeout = float(configured) if configured else _DEFAULT_TIMEOUT
    return max(timeout, 1.0) + 30.0


@pytest.fixture(autouse=True)
def clustermgr_load(request: pytest.FixtureRequest) -> Iterator[CpuHogs | None]:
    """In load mode, a test marked ``fault`` runs while CPU hogs spin (yields them;
    ``None`` otherwise).  They start before the test's topology and stop by PID
    after it."""
    if request.node.get_closest_marker("fault") is None or not request.config.getoption("--load"):
        yield None
        return
    from .load import CpuHogs

    count = request.config.getoption("--load-hogs")
    with CpuHogs(count, seconds=_hog_seconds(request.node)) as hogs:
        yield hogs


# -- shared session topologies -------------------------------------------------


@pytest.fixture(scope="session")
def redis_standalone() -> Iterator[LocalStandalone]:
    """A shared standalone server for the whole session (don't break it)."""
    from .standalone import LocalStandalone

    with LocalStandalone() as topology:
        yield topology


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A shared 3 masters + 3 replicas cluster for the whole session (don't break it)."""
    from .cluster import LocalCluster

    with LocalCluster() as topology:
        yield topology


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[LocalSentinelGroup]:
    """A shared master + replica + 3 sentinels group (service ``mymaster``)."""
    from .sentinel import LocalSentinelGroup

    with LocalSentinelGroup() as topology:
        yield topology


# -- factories for destructive tests ----------------------------------------------


def _factory(cls: Callable[..., _T]) -> Iterator[Callable[..., _T]]:
    started: list[_T] = []

    def factory(*args: Any, **kwargs: Any) -> _T:
        topology = cls(*args, **kwargs)
        started.append(topology)
        topology.start()
        return topology

    try:
        yield factory
    finally:
        errors: list[BaseException] = []
        for topology in reversed(started):
            try:
                topology.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def local_standalone_factory() -> Iterator[Callable[..., LocalStandalone]]:
    """``factory(**LocalStandalone kwargs)`` -> a started, test-owned standalone server."""
    from .standalone import LocalStandalone

    yield from _factory(LocalStandalone)


@pytest.fixture
def local_cluster_factory() -> Iterator[Callable[..., LocalCluster]]:
    """``factory(**LocalCluster kwargs)`` -> a started, test-owned cluster."""
    from .cluster import LocalCluster

    yield from _factory(LocalCluster)


@pytest.fixture
def local_sentinel_factory() -> Iterator[Callable[..., LocalSentinelGroup]]:
    """``factory(**LocalSentinelGroup kwargs)`` -> a started, test-owned sentinel group."""
    from .sentinel import LocalSentinelGroup

    yield from _factory(LocalSentinelGroup)


# -- docker ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_redis(pytestconfig: pytest.Config) -> Iterator[DockerTopologies]:
    """With ``--docker``: bring up ``docker/docker-compose.yml`` (pytest-docker),
    wait until healthy, yield the addresses, tear down.  Skips otherwise."""
    if not pytestconfig.getoption("--docker"):
        pytest.skip("docker test: run with --docker")
    try:
        from pytest_docker.plugin import get_docker_services
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.skip("pytest-docker is not installed")
    from .docker import DockerTopologies

    compose_file = pytestconfig.getoption("--docker-compose-file") or str(
        Path(str(pytestconfig.rootpath)) / "docker" / "docker-compose.yml"
    )
    with get_docker_services(
        "docker compose",
        str(compose_file),
        f"clustermgr{os.getpid()}",
        ["up -d"],
        ["down -v"],
    ):
        topologies = DockerTopologies()
        topologies.wait_ready()
        yield topologies
