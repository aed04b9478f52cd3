"""The routing core under ClusterPool and SentinelPool (see :mod:`.core`).

* :mod:`.actions`: which error leads to which action, and the retry budget;
* :mod:`.classified`: :class:`Classified`, a command classified once, as
  the retry path carries it;
* :mod:`.core`: :class:`Router` (fast path, the one retry path,
  acquire/release, tasks, stats, close);
* :mod:`.batchplan`: a batch checked and cut into segments before anything
  is sent; :mod:`.batch`: many commands per node in one write, redirects
  followed in order.
"""

from __future__ import annotations

from .actions import Action, Budget, ErrorActions
from .core import Classified, Router

__all__ = ["Action", "Budget", "Classified", "ErrorActions", "Router"]
