"""Small things every sentinel module uses: the address type, its text, the
logger, and the task set (:class:`clustermgr.tasks.Tasks`)."""

from __future__ import annotations

import logging

from ..address import address_text
from ..tasks import Tasks

__all__ = ["Address", "Tasks", "address_text", "logger"]

Address = tuple[str, int]

logger = logging.getLogger("clustermgr.sentinel")

