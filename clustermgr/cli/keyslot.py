"""``clustermgr keyslot KEY... [--url URL]``: the hash slot of keys, and their owner."""

from __future__ import annotations

import argparse
from typing import Any

from ..address import address_text
from ..slots import key_slot
from ._cluster import read_cluster
from ._common import add_tls_arguments, node_address, run_async, tls_context

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Register the subcommand."""
    parser = commands.add_parser(
        "keyslot", help="hash slot of keys (and the owning node with --url)",
        description="Print each key's hash slot; with --url also the master that serves it.",
    )
    parser.add_argument("keys", nargs="+", metavar="KEY")
    parser.add_argument("--url", help="any cluster node, to name the owner of each slot")
    add_tls_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print ``KEY SLOT [OWNER]`` lines."""
    view = None
    if args.url:
        address = node_address(args.url)
        view = run_async(read_cluster(address, tls=tls_context(args, address), keys=False))
    for key in args.keys:
        slot = key_slot(key)
        line = f"{key} {slot}"
        if view is not None:
            owner = view.owner(slot)
            line += f" {address_text(owner) if owner else 'unassigned'}"
        print(line)
    return 0
