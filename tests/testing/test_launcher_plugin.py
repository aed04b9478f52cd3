"""The pytest plugin: fixtures, --docker gating."""

from __future__ import annotations

import pytest
from launcher_helpers import PLUGIN_ARGS

from clustermgr.testing import DockerTopologies, LocalCluster, LocalStandalone, serverprocess

INNER_TESTS = """
import pytest

@pytest.mark.docker
def test_needs_docker(docker_redis):
    raise AssertionError("must be skipped without --docker")

def test_factory(local_standalone_factory):
    first = local_standalone_factory()
    second = local_standalone_factory(password="pw")
    assert first.server.ping() and second.server.ping()

def test_plain():
    pass
"""


def test_docker_tests_skipped_and_factories_clean_up(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner=INNER_TESTS)
    before = set(serverprocess._live)
    result = pytester.runpytest_inprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    assert set(serverprocess._live) == before  # the factory stopped what it started
    result.stdout.fnmatch_lines(["*run with --docker*"])


def test_plugin_options_registered(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_inprocess(*PLUGIN_ARGS, "--help")
    result.stdout.fnmatch_lines(["*--docker*", "*--docker-compose-file*"])


def test_shared_standalone_fixture(redis_standalone: LocalStandalone) -> None:
    assert redis_standalone.server.ping()
    assert redis_standalone.is_started


def test_docker_topologies_defaults() -> None:
    topo = DockerTopologies()
    assert topo.standalone == ("127.0.0.1", 7379)
    assert topo.cluster_startup_nodes[0] == ("127.0.0.1", 7000)
    assert len(topo.sentinel_addresses) == 3
    assert topo.sentinel_service == "mymaster"


@pytest.mark.docker
def test_docker_stack(docker_redis: DockerTopologies) -> None:
    """Runs only with --docker: the compose topologies answer like the local ones."""
    from clustermgr.testing import execute
    from clustermgr.testing.resp import as_list, as_str

    assert execute(docker_redis.standalone, "PING") == "PONG"
    info = as_str(execute(docker_redis.cluster_startup_nodes[0], "CLUSTER", "INFO"))
    assert "cluster_state:ok" in info
    addr = as_list(
        execute(
            docker_redis.sentinel_addresses[0],
            "SENTINEL",
            "GET-MASTER-ADDR-BY-NAME",
            docker_redis.sentinel_service,
        )
    )
    assert addr == ["127.0.0.1", "7100"]


def test_cluster_class_is_exported() -> None:
    assert LocalCluster.kind == "cluster"
