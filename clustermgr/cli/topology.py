"""``clustermgr topology URL [--json]``: the slot map and the nodes of a cluster."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..address import address_text
from ._cluster import ClusterView, read_cluster
from ._common import add_tls_arguments, node_address, run_async, tls_context

__all__ = ["add_parser", "format_table", "run"]


def add_parser(commands: Any) -> None:
    """Register the subcommand."""
    parser = commands.add_parser(
        "topology", help="show a cluster's slot map and nodes",
        description="Show the slot map and nodes (role, health, config epoch, slot ranges, "
        "key counts) as seen by the node at URL.",
    )
    parser.add_argument("url", metavar="URL", help="any node: redis://host:port or host:port")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_tls_arguments(parser)
    parser.set_defaults(run=run)


def _ranges(slots: list[tuple[int, int]]) -> str:
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in slots)


def format_table(view: ClusterView) -> str:
    """The human-readable table."""
    slot_map = view.slot_map
    lines = [
        f"cluster seen from {address_text(view.source)}: epoch {slot_map.epoch}, "
        f"{slot_map.covered}/16384 slots covered, {len(slot_map.masters)} masters"
    ]
    header = ("ADDRESS", "ROLE", "HEALTH", "EPOCH", "KEYS", "SLOTS")
    rows = [header]
    for node in view.nodes:
        slots = _ranges(node.slots) if node.role == "master" else (
            f"replica of {address_text(node.master)}" if node.master else "-"
        )
        rows.append((
            address_text(node.address), node.role, node.health,
            "-" if node.config_epoch is None else str(node.config_epoch),
            "-" if node.keys is None else str(node.keys), slots or "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def as_json(view: ClusterView) -> dict[str, Any]:
    """The view as plain data."""
    return {
        "source": address_text(view.source),
        "epoch": view.slot_map.epoch,
        "covered": view.slot_map.covered,
        "nodes": [
            {
                "address": address_text(n.address), "id": n.node_id, "role": n.role,
                "health": n.health, "config_epoch": n.config_epoch, "keys": n.keys,
                "master": address_text(n.master) if n.master else None,
                "slots": [list(r) for r in n.slots],
            }
            for n in view.nodes
        ],
    }


def run(args: argparse.Namespace) -> int:
    """Print the topology."""
    address = node_address(args.url)
    view = run_async(read_cluster(address, tls=tls_context(args, address)))
    print(json.dumps(as_json(view), indent=2) if args.json else format_table(view))
    return 0
