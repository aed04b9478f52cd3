"""Exceptions raised by the :mod:`clustermgr.testing` launcher."""

from __future__ import annotations

__all__ = [
    "ServerBinaryNotFound",
    "ServerStartError",
    "TestingError",
    "TopologyTimeout",
]


class TestingError(Exception):
    """Base class of every error raised by :mod:`clustermgr.testing`."""

    __test__ = False  # not a pytest test class


class ServerBinaryNotFound(TestingError, FileNotFoundError):
    """No usable ``redis-server`` / ``valkey-server`` binary was found.

    ``searched`` lists every place that was tried, in order.
    """

    def __init__(self, message: str, searched: list[str]) -> None:
        super().__init__(message)
        self.searched = searched

    def __str__(self) -> str:
        return str(self.args[0])


class ServerStartError(TestingError, RuntimeError):
    """A server process did not come up; the message carries the log tail."""


class TopologyTimeout(TestingError, TimeoutError):
    """A topology did not reach the awaited state within its time budget."""
