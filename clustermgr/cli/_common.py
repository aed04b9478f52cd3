"""Helpers shared by the subcommands: error reporting, addresses, async running."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..address import InvalidAddressError, ServerAddress, parse_address, redact_url
from ..errors import RedisError

__all__ = ["CliError", "node_address", "run_async", "run_command", "say"]

_T = TypeVar("_T")


class CliError(Exception):
    """A problem to report as one line on stderr (exit status ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def node_address(url: str) -> ServerAddress:
    """Parse a node URL or ``host:port``; raises :class:`CliError` if it is not usable."""
    text = url if "://" in url or url.startswith("/") else f"redis://{url}"
    try:
        address = parse_address(text)
    except InvalidAddressError as exc:
        raise CliError(f"bad URL: {exc}", 2) from None
    if address.path is not None:
        raise CliError(f"bad URL {redact_url(url)!r}: a TCP address is needed here", 2)
    return address


def run_async(coro: Awaitable[_T]) -> _T:
    """Run ``coro`` on a new event loop."""
    async def runner() -> _T:
        return await coro

    return asyncio.run(runner())


def run_command(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; turn expected failures into one stderr line and an exit status."""
    try:
        return command(args)
    except CliError as exc:
        _fail(str(exc))
        return exc.code
    except KeyboardInterrupt:
        return 130
    except (RedisError, OSError, asyncio.TimeoutError, ValueError) as exc:
        _fail(str(exc) or type(exc).__name__)
        return 1
    except Exception as exc:  # a bug: still one line, with what it was
        _fail(f"unexpected {type(exc).__name__}: {exc}")
        return 1


def _fail(message: str) -> None:
    print(f"clustermgr: error: {message}", file=sys.stderr, flush=True)


def say(line: str) -> None:
    """Print one line of output now (watch and dev print as things happen)."""
    print(line, flush=True)
