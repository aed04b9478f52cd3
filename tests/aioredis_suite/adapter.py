"""pytest plugin layered over aioredis 1.3.1's own conftest (loaded with ``-p adapter``).

Shims that let the 2019 suite run on today's pytest and async-timeout, then,
unless the backend is ``aioredis``, swaps ``aioredis.create_connection``,
``create_pool``, ``create_redis`` and ``create_redis_pool`` for
clustermgr-backed versions. Environment:

``AIOREDIS_SUITE_BACKEND``  ``aioredis``, ``clustermgr`` (default) or ``cluster``
                            (pools over a one-shard cluster; servers started
                            cluster-enabled by run.py's wrapper)
``AIOREDIS_SUITE_STRICT``   ``1``: tests keep catching aioredis' own error
                            classes; otherwise ``aioredis.errors`` names are
                            clustermgr's classes.
``AIOREDIS_SUITE_REPORT``   file to write ``{nodeid: outcome}`` to (JSON).
"""

from __future__ import annotations

import json
import os

import pytest
from shims import install_shims

install_shims()

BACKEND = os.environ.get("AIOREDIS_SUITE_BACKEND", "clustermgr")
STRICT = os.environ.get("AIOREDIS_SUITE_STRICT") == "1"

if BACKEND != "aioredis":
    from backend import install_backend

    install_backend(strict=STRICT, cluster=BACKEND == "cluster")

_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record one outcome per test: a failed setup or teardown fails the test."""
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("AIOREDIS_SUITE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(_outcomes, f, indent=0, sort_keys=True)
