"""Finding the master (or healthy replicas) of a service from its sentinels.

Every known sentinel is asked in parallel, each bounded by the client's
timeout. Answers from sentinels that see the master as down are ignored; of
the rest, the address named by the most sentinels wins, unless a minority
names another address under a newer ``config-epoch`` (a failover whose news
has not reached everyone yet). The caller then verifies the winner with
``ROLE`` (:func:`check_role`) before using it.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..connection import RedisConnection
from ..errors import (
    NoPermissionError,
    ProtocolError,
    RedisError,
    ReplyError,
)
from ._common import Address, address_text, logger
from .errors import (
    MasterDownError,
    NoHealthyReplicaError,
    RoleMismatchError,
    SentinelAuthError,
    SentinelsUnreachableError,
    UnknownServiceError,
)
from .replies import malformed, port_text, reply_dict, reply_dicts
from .sentinel import RedisSentinel

__all__ = [
    "MasterView",
    "check_role",
    "choose_master",
    "discover_master",
    "discover_replicas",
]


_DOWN_FLAGS = frozenset({"s_down", "o_down", "disconnected"})
#: A master flagged so is being replaced: its address is no longer news.
_REPLACED_FLAGS = _DOWN_FLAGS | {"failover_in_progress"}


@dataclass(frozen=True)
class MasterView:
    """What one sentinel said about the master of a service."""

    sentinel: Address
    address: Address
    flags: frozenset[str]
    config_epoch: int

    @property
    def reports_down(self) -> bool:
        """True when this sentinel sees the master down, unreachable or being failed over."""
        return bool(self.flags & _REPLACED_FLAGS)



def _view(sentinel: Address, reply: Any, client: RedisSentinel) -> MasterView:
    info = reply_dict(reply, sentinel)
    try:
        address = (info["ip"], port_text(info["port"]))
        epoch = int(info.get("config-epoch", "0") or 0)
    except (KeyError, ValueError):
        raise malformed(sentinel, "master view", reply) from None
    return MasterView(
        sentinel=sentinel,
        address=client.remap(address),
        flags=frozenset(info.get("flags", "").split(",")),
        config_epoch=epoch,
    )


def _drop_malformed(answers: dict[Address, Any], source: Address, exc: ProtocolError) -> None:
    """Count a malformed answer as that sentinel's failure, and log it (bounded)."""
    logger.warning("%s; ignoring that sentinel's answer", exc)
    answers[source] = exc


def choose_master(views: list[MasterView]) -> list[Address]:
    """Candidate master addresses, best first, from sentinels that see it up.

    The majority's address comes first unless another address carries a
    strictly newer config epoch.
    """
    healthy = [v for v in views if not v.reports_down]
    if not healthy:
        return []
    votes = Counter(v.address for v in healthy)
    epochs: dict[Address, int] = {}
    for view in healthy:
        epochs[view.address] = max(epochs.get(view.address, 0), view.config_epoch)
    return sorted(votes, key=lambda a: (epochs[a], votes[a]), reverse=True)


def _raise_for(
    service: str, answers: dict[Address, Any], views: list[MasterView], what: str
) -> None:
    unknown = [a for a, r in answers.items() if isinstance(r, UnknownServiceError)]
    auth = [r for r in answers.values() if isinstance(r, SentinelAuthError)]
    others = [
        f"{address_text(a)}: {r}" for a, r in answers.items()
        if isinstance(r, BaseException) and not isinstance(r, UnknownServiceError)
    ]
    if auth:
        raise SentinelAuthError(
            f"sentinels refused our credentials for {what} of {service!r}: {auth[0]}"
        )
    if views:
        raise MasterDownError(
            f"every sentinel that answered reports the master of {service!r} down: "
            + ", ".join(
                f"{address_text(v.sentinel)} flags={','.join(sorted(v.flags))}" for v in views
            )
        )
    if unknown:
        raise UnknownServiceError(
            f"no sentinel monitors a service named {service!r} "
            f"(asked {', '.join(address_text(a) for a in answers)})"
        )
    raise SentinelsUnreachableError(
        f"no sentinel gave a usable answer about {service!r}: " + "; ".join(others),
        failures={a: r for a, r in answers.items() if isinstance(r, BaseException)},
    )


def _classify(reply: Any) -> Any:
    if isinstance(reply, ReplyError) and "No such master" in str(reply):
        error = UnknownServiceError(str(reply))
        error.__cause__ = reply
        return error
    return reply


async def discover_master(
    sentinel: RedisSentinel, service: str
) -> tuple[list[Address], list[MasterView]]:
    """Ask every sentinel about ``service``; return (candidates best first, views).

    Raises :class:`UnknownServiceError`, :class:`SentinelsUnreachableError`,
    :class:`SentinelAuthError` or :class:`MasterDownError` (all down).
    """
    answers = {
        a: _classify(r)
        for a, r in (await sentinel.ask_all(b"SENTINEL", b"MASTER", service)).items()
    }
    views: list[MasterView] = []
    for address, reply in list(answers.items()):
        if isinstance(reply, BaseException):
            continue
        try:
            views.append(_view(address, reply, sentinel))
        except ProtocolError as exc:
            _drop_malformed(answers, address, exc)
    candidates = choose_master(views)
    if not candidates:
        _raise_for(service, answers, views, "the master")
    return candidates, views


async def discover_replicas(sentinel: RedisSentinel, service: str) -> list[Address]:
    """Healthy replicas of ``service`` (shuffled): up, connected, link ok.

    A replica counts as healthy when at least half of the sentinels that
    listed it see it healthy.
    """
    answers = {
        a: _classify(r)
        for a, r in (await sentinel.ask_all(b"SENTINEL", b"REPLICAS", service)).items()
    }
    listed: Counter[Address] = Counter()
    healthy: Counter[Address] = Counter()
    answered = False
    for source, reply in list(answers.items()):
        if isinstance(reply, BaseException):
            continue
        try:
            infos = reply_dicts(reply, source)
        except ProtocolError as exc:
            _drop_malformed(answers, source, exc)
            continue
        answered = True
        for info in infos:
            try:
                announced = (info["ip"], port_text(info["port"]))
            except (KeyError, ValueError):
                continue
            address = sentinel.remap(announced)
            listed[address] += 1
            flags = set(info.get("flags", "").split(","))
            if not flags & _DOWN_FLAGS and info.get("master-link-status", "ok") == "ok":
                healthy[address] += 1
    if not answered:
        _raise_for(service, answers, [], "the replicas")
    good = [a for a in listed if healthy[a] * 2 >= listed[a]]
    if not good:
        raise NoHealthyReplicaError(
            f"sentinels list no healthy replica of {service!r} "
            f"(listed: {', '.join(address_text(a) for a in listed) or 'none'})"
        )
    random.shuffle(good)
    return good


def _run_id(info: Any) -> str:
    if isinstance(info, BaseException) or not isinstance(info, bytes):
        return ""  # INFO not allowed (ACL) or odd: identity unknown
    for line in info.decode(errors="replace").splitlines():
        if line.startswith("run_id:"):
            return line[len("run_id:"):].strip()
    return ""


async def check_role(conn: RedisConnection, role: str) -> str | None:
    """Raise :class:`RoleMismatchError` unless ``ROLE`` on ``conn`` says ``role``.

    ``role`` is ``"master"`` or ``"replica"`` (a replica must also have its
    link to the master connected). Returns the server's ``run_id`` (``""``
    if ``INFO`` is not allowed): a restarted server has a new one. Returns
    None when ``ROLE`` itself is not allowed (ACL, NOPERM): the role is then
    unverified, and the caller relies on the sentinels' view (the weaker check).
    """
    role_reply = conn.execute(b"ROLE", encoding=None)
    info_reply = conn.execute(b"INFO", b"server", encoding=None)  # same round trip
    replies = await asyncio.gather(role_reply, info_reply, return_exceptions=True)
    reply, info = replies
    if isinstance(reply, NoPermissionError):
        return None
    if isinstance(reply, ReplyError):
        raise RoleMismatchError(conn.address, role, f"error: {reply}") from reply
    if isinstance(reply, BaseException):
        raise reply
    if not isinstance(reply, list) or not reply:
        raise RedisError(f"unexpected ROLE reply from {conn.address}: {reply!r}")
    actual = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    if role == "master":
        if actual != "master":
            raise RoleMismatchError(conn.address, role, actual)
        return _run_id(info)
    if actual != "slave":
        raise RoleMismatchError(conn.address, role, actual)
    state = reply[3].decode() if len(reply) > 3 and isinstance(reply[3], bytes) else ""
    if state != "connected":
        raise RoleMismatchError(conn.address, role, f"replica with link {state or 'down'}")
    return _run_id(info)
