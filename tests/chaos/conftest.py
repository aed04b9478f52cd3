"""Chaos and soak suites: markers and their environment switches.

* ``chaos`` -- runs by default in a short form (about 25 s of faults per
  topology); ``CLUSTERMGR_CHAOS_SECONDS=600`` for the long form,
  ``CLUSTERMGR_CHAOS_SEED=<n>`` to replay a schedule.
* ``soak`` -- skipped unless ``CLUSTERMGR_SOAK_SECONDS`` is set (>= 120 for the
  figures the issue asks for).
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: fault-injection suite (short by default; CLUSTERMGR_CHAOS_SECONDS)"
    )
    config.addinivalue_line(
        "markers", "soak: long full-speed run (only with CLUSTERMGR_SOAK_SECONDS set)"
    )
