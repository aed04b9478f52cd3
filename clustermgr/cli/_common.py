"""Helpers shared by the subcommands: error reporting, addresses, async running."""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..address import InvalidAddressError, ServerAddress, parse_address, redact_url
from ..errors import RedisError

__all__ = [
    "CliError", "add_tls_arguments", "node_address", "run_async", "run_command", "say",
    "tls_context",
]

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


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """The TLS options every subcommand that connects takes."""
    group = parser.add_argument_group(
        "TLS", "used for rediss:// URLs, or whenever one of these options is given; "
        "applies to every connection the command opens"
    )
    group.add_argument("--tls-ca", metavar="FILE", help="CA certificates to trust (PEM)")
    group.add_argument("--tls-cert", metavar="FILE", help="client certificate (PEM)")
    group.add_argument("--tls-key", metavar="FILE",
                       help="client key (PEM; default: in the --tls-cert file)")
    group.add_argument("--insecure", action="store_true",
                       help="TLS without certificate or hostname verification (explicit opt-out)")


def tls_context(args: argparse.Namespace, address: ServerAddress) -> ssl.SSLContext | None:
    """The client TLS context the options and the URL ask for (``None``: plaintext).

    Verification stays on unless ``--insecure`` is given.
    """
    if not (address.ssl or args.tls_ca or args.tls_cert or args.tls_key or args.insecure):
        return None
    if args.tls_key and not args.tls_cert:
        raise CliError("--tls-key needs --tls-cert", 2)
    try:
        context = ssl.create_default_context(cafile=args.tls_ca)
        if args.tls_cert:
            context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot load TLS files: {exc}", 2) from None
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


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
