"""Test setup for clustermgr.testing's own tests.

Makes the repo importable when the package is not installed, and loads the
``clustermgr.testing.plugin`` pytest plugin unless its ``pytest11`` entry
point is already active (registering it twice would be an error).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

try:
    import clustermgr.testing  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))

from launcher_helpers import plugin_entry_point_active  # noqa: E402

pytest_plugins = ["pytester"]
if not plugin_entry_point_active():
    pytest_plugins.append("clustermgr.testing.plugin")
