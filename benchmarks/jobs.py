"""Plain-data descriptions of what to run, shared by the harness and its runners.

A :class:`Job` is serialised to JSON and handed to ``python -m
benchmarks.runner`` (possibly in another virtualenv), which prints one JSON
result object.  Only the standard library is used here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TargetKind = Literal["cluster", "single", "sentinel"]
TARGET_KINDS: tuple[TargetKind, ...] = ("cluster", "single", "sentinel")

KEY_PREFIX = b"bench:"
VALUE = b"0123456789abcdef"
"""The 16-byte value every client writes."""


@dataclass(frozen=True)
class Target:
    """Where to connect: a cluster (any of its nodes), one standalone server, or sentinels.

    For ``sentinel``, ``nodes`` are the sentinels and ``service`` the monitored
    master's name.
    """

    kind: TargetKind
    nodes: tuple[tuple[str, int], ...]
    service: str = ""

    @property
    def address(self) -> tuple[str, int]:
        """The first node (the server itself for ``single``, a sentinel for ``sentinel``)."""
        return self.nodes[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "nodes": [list(n) for n in self.nodes],
                "service": self.service}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        """Inverse of :meth:`to_dict`."""
        kind = data["kind"]
        if kind not in TARGET_KINDS:
            raise ValueError(f"unknown target kind {kind!r}")
        nodes = tuple((str(h), int(p)) for h, p in data["nodes"])
        return cls(kind, nodes, str(data.get("service", "")))


@dataclass
class Job:
    """One measurement: one client, one scenario, one target, one process."""

    client: str
    scenario: str
    target: Target
    params: dict[str, Any] = field(default_factory=dict)
    maxsize: int = 10
    duration: float | None = None
    """Cap, in seconds, on each timed phase (``None``: run every op)."""
    client_options: dict[str, Any] = field(default_factory=dict)
    """Adapter-specific settings (e.g. ``{"redis_py_pool": "blocking"}``)."""

    def to_json(self) -> str:
        """Serialise for a runner subprocess."""
        data = asdict(self)
        data["target"] = self.target.to_dict()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Job:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        data["target"] = Target.from_dict(data["target"])
        return cls(**data)


def key(index: int) -> bytes:
    """The benchmark key number ``index`` (no hash tag: keys spread over all slots)."""
    return KEY_PREFIX + b"%08d" % index


def keys(count: int, start: int = 0) -> list[bytes]:
    """``count`` consecutive benchmark keys."""
    return [key(i) for i in range(start, start + count)]
