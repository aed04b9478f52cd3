"""Errors the cluster pool adds to :mod:`clustermgr.errors`."""

from __future__ import annotations

from ..errors import ConnectionClosedError, RouteError

__all__ = ["ClusterRetryError", "OutcomeUnknownError"]


class OutcomeUnknownError(ConnectionClosedError):
    """A write was sent, then its connection broke: it may have been applied.

    The pool does not retry it (retrying could apply it twice); the caller
    decides. ``may_have_executed`` is always True.
    """

    def __init__(self, msg: str) -> None:
        super().__init__(msg, may_have_executed=True)


class ClusterRetryError(RouteError):
    """A command ran out of redirects or of its time budget.

    ``last_error`` is the last redirect or transient error seen;
    ``may_have_executed`` is True only if some attempt's outcome is unknown.
    """

    def __init__(
        self, msg: str, last_error: BaseException | None, *, may_have_executed: bool = False
    ) -> None:
        note = "it may have been applied" if may_have_executed else "it was not applied"
        super().__init__(f"{msg} ({note})")
        self.last_error = last_error
        self.may_have_executed = may_have_executed
