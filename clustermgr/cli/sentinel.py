"""``clustermgr sentinel URL SERVICE``: a service's master, replicas, sentinels and their views."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ..address import address_text
from ..errors import RedisError, ReplyError
from ..sentinel import RedisSentinel
from ..sentinel.replies import address_reply
from ._common import CliError, add_tls_arguments, node_address, run_async, tls_context

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Register the subcommand."""
    parser = commands.add_parser(
        "sentinel", help="show a sentinel service: master, replicas, sentinels",
        description="Show what the sentinels know about SERVICE: its master, replicas, the "
        "other sentinels, and which master each sentinel names.",
    )
    parser.add_argument("url", metavar="URL", help="one sentinel: redis://host:port")
    parser.add_argument("service", metavar="SERVICE", help="the monitored master's name")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_tls_arguments(parser)
    parser.set_defaults(run=run)


async def _view(client: RedisSentinel, address: Any, service: str) -> str:
    try:
        named = await client.execute_on(
            address, b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", service, parse=address_reply)
    except (RedisError, OSError) as exc:
        return f"unreachable ({exc})"
    return "does not know the service" if named is None else address_text(named)


async def _describe(args: argparse.Namespace) -> dict[str, Any]:
    address, service = node_address(args.url), args.service
    # The other sentinels are reached with the same TLS and credentials.
    client = RedisSentinel([address], ssl=tls_context(args, address), timeout=2.0)
    try:
        try:
            master = await client.master(service)
        except ReplyError as exc:
            if "unknown command" in str(exc).lower():
                where = address_text(address.target)
                raise CliError(f"{where} is not a sentinel ({exc})") from None
            raise
        replicas = await client.replicas(service)
        peers = await client.sentinels(service)
        addresses = [address.target] + [(p["ip"], int(p["port"])) for p in peers]
        views = await asyncio.gather(*(_view(client, a, service) for a in addresses))
    finally:
        client.close()
        await client.wait_closed()
    return {
        "service": service,
        "master": {"address": f"{master['ip']}:{master['port']}", "flags": master.get("flags"),
                   "quorum": master.get("quorum"), "config_epoch": master.get("config-epoch")},
        "replicas": [
            {"address": f"{r['ip']}:{r['port']}", "flags": r.get("flags"),
             "link": r.get("master-link-status"), "offset": r.get("slave-repl-offset")}
            for r in replicas
        ],
        "sentinels": [
            {"address": address_text(a), "master": view}
            for a, view in zip(addresses, views, strict=True)
        ],
    }


def _format(data: dict[str, Any]) -> str:
    master = data["master"]
    lines = [f"service {data['service']!r}: master {master['address']} (flags {master['flags']}, "
             f"quorum {master['quorum']}, config epoch {master['config_epoch']})",
             f"replicas ({len(data['replicas'])}):"]
    lines += [f"  {r['address']}  flags {r['flags']}  link {r['link']}  offset {r['offset']}"
              for r in data["replicas"]]
    lines.append(f"sentinels ({len(data['sentinels'])}), and the master each one names:")
    lines += [f"  {s['address']}  -> {s['master']}" for s in data["sentinels"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the service."""
    data = run_async(_describe(args))
    print(json.dumps(data, indent=2) if args.json else _format(data))
    return 0
