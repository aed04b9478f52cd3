"""Address remapping: reach nodes that announce addresses the client cannot use.

Behind NAT, in docker or Kubernetes, cluster nodes and sentinels announce
addresses (``CLUSTER SHARDS``/``SLOTS``, ``MOVED``/``ASK``, ``SENTINEL
MASTER``/``REPLICAS`` and sentinel events) that only make sense inside their
network. An ``address_remap`` callable ``(host, port) -> (host, port)`` given to
:func:`~clustermgr.cluster.create_cluster_pool` or
:func:`~clustermgr.sentinel.create_sentinel_pool` turns each announced address
into one the client can connect to. :func:`remap_address` is the one place it
is called: it checks the answer and turns a failing callable into a typed
:class:`AddressRemapError`.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import RedisError

__all__ = ["AddressRemap", "AddressRemapError", "remap_address"]

AddressRemap = Callable[[str, int], tuple[str, int]]
"""``(announced host, announced port) -> (host, port)`` to connect to."""


class AddressRemapError(RedisError):
    """The ``address_remap`` callable raised or returned something not ``(host, port)``.

    The command (or the pool being created) fails with it: a remap bug is
    never retried. ``address`` is the announced address it was given.
    """

    def __init__(self, msg: str, address: tuple[str, int]) -> None:
        super().__init__(msg)
        self.address = address


def remap_address(remap: AddressRemap | None, address: tuple[str, int]) -> tuple[str, int]:
    """``remap(host, port)`` checked (``address`` itself without a remap)."""
    if remap is None:
        return address
    host, port = address
    try:
        result = remap(host, port)
    except Exception as exc:
        raise AddressRemapError(
            f"address_remap failed for {host}:{port}: {type(exc).__name__}: {exc}", address
        ) from exc
    if (
        not isinstance(result, tuple)
        or len(result) != 2
        or not isinstance(result[0], str)
        or not result[0]
        or isinstance(result[1], bool)
        or not isinstance(result[1], int)
        or not 0 < result[1] < 65536
    ):
        raise AddressRemapError(
            f"address_remap returned {result!r} for {host}:{port}, not a (host, port) pair",
            address,
        )
    return result
