"""Marks for tests that are known not to hold on the Valkey CI step yet."""

from __future__ import annotations

import os

import pytest

#: The Valkey step runs with ``CLUSTERMGR_REDIS_SERVER=.../valkey-server``. Following
#: a ``CLUSTER FAILOVER TAKEOVER`` of a dead or frozen master within the bounds
#: these tests assert fails there (Valkey 8.1.8): open in issue 14.
takeover_not_on_valkey = pytest.mark.skipif(
    "valkey" in os.path.basename(os.environ.get("CLUSTERMGR_REDIS_SERVER", "")),
    reason="following a TAKEOVER of a dead or frozen master fails on Valkey 8.1 (issue 14)",
)
