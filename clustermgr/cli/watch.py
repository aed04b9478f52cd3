"""``clustermgr watch URL [--sentinel SERVICE]``: topology events as they happen, one a line."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ..address import address_text
from ..events import FailoverDetected, NodeDown, NodeUp, TopologyChanged
from ._common import add_tls_arguments, node_address, run_async, say, tls_context

__all__ = ["add_parser", "run"]

_TYPES = (TopologyChanged, FailoverDetected, NodeDown, NodeUp)


def add_parser(commands: Any) -> None:
    """Register the subcommand."""
    parser = commands.add_parser(
        "watch", help="print topology changes and failovers as they happen",
        description="Follow a cluster (or, with --sentinel, a sentinel-managed service) and "
        "print one timestamped line per topology change, failover, node down or up. Runs "
        "until Ctrl-C or --duration.",
    )
    parser.add_argument(
        "url", metavar="URL",
        help="a cluster node, or a sentinel with --sentinel (its credentials and TLS are "
        "used for the data nodes too)",
    )
    parser.add_argument("--sentinel", metavar="SERVICE", help="watch this sentinel service")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between slot map reloads (cluster; default 0.5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_tls_arguments(parser)
    parser.set_defaults(run=run)


async def _open(args: argparse.Namespace) -> tuple[Any, str]:
    address = node_address(args.url)
    tls = tls_context(args, address)
    if args.sentinel:
        from ..sentinel import create_sentinel_pool

        # The URL's credentials and TLS serve the sentinels and the data nodes.
        pool: Any = await create_sentinel_pool(
            [address], args.sentinel, minsize=1, maxsize=1, role_check_interval=args.interval,
            username=address.username, password=address.password, ssl=tls, sentinel_ssl=tls,
        )
        return pool, (f"watching {args.sentinel!r} via sentinel {address_text(address.target)}: "
                      f"master {address_text(pool.address)}")
    from ..cluster import RefreshOptions, create_cluster_pool

    refresh = RefreshOptions(period=args.interval, min_interval=min(0.1, args.interval))
    pool = await create_cluster_pool(
        [address.target], minsize=0, maxsize=1, refresh=refresh, ssl=tls,
        username=address.username, password=address.password,
    )
    slot_map = pool.slot_map
    epoch = slot_map.epoch if slot_map is not None else 0
    masters = len(slot_map.masters) if slot_map is not None else 0
    return pool, (f"watching cluster via {address_text(address.target)}: epoch {epoch}, "
                  f"{masters} masters")


async def _watch(args: argparse.Namespace) -> int:
    pool, banner = await _open(args)
    loop = asyncio.get_running_loop()
    deadline = None if args.duration is None else loop.time() + args.duration
    try:
        say(banner + (" (Ctrl-C to stop)" if deadline is None else f" for {args.duration:g}s"))
        async with pool.events.stream(*_TYPES) as stream:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(stream.get(), remaining)
                except asyncio.TimeoutError:
                    break
                say(json.dumps({"at": event.at, **event.to_dict()}) if args.json else str(event))
    finally:
        pool.close()
        await pool.wait_closed()
    return 0


def run(args: argparse.Namespace) -> int:
    """Watch until Ctrl-C or ``--duration``."""
    return run_async(_watch(args))
