"""Command line: ``python -m clustermgr`` (the ``clustermgr`` console script).

The subcommands live in :mod:`clustermgr.cli`.
"""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
