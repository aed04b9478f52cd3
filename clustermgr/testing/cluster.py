"""A local Redis Cluster (masters + replicas) with failover and resharding helpers."""

from __future__ import annotations

from dataclasses import dataclass

from ._wait import wait_until
from .process import ConfigInput, LocalServer, config_lines
from .resp import CommandArg, RespError, RespValue, as_int, as_list, as_str
from .tls import TlsFiles, client_context, tls_only_config
from .topology import Topology

__all__ = ["SLOT_COUNT", "LocalCluster", "SlotMigration", "SlotRange"]

SLOT_COUNT = 16384
_FAILOVER_MODES = (None, "FORCE", "TAKEOVER")


@dataclass(frozen=True)
class SlotRange:
    """One ``CLUSTER SLOTS`` entry, with nodes identified by port."""

    start: int
    end: int
    master_port: int
    replica_ports: tuple[int, ...]


def _parse_slots(reply: RespValue) -> list[SlotRange]:
    ranges = []
    for entry in as_list(reply):
        items = as_list(entry)
        master = as_list(items[2])
        replicas = tuple(sorted(as_int(as_list(r)[1]) for r in items[3:]))
        ranges.append(SlotRange(as_int(items[0]), as_int(items[1]), as_int(master[1]), replicas))
    ranges.sort(key=lambda r: r.start)
    return ranges


def _even_split(masters: int) -> list[tuple[int, int]]:
    bounds = [round(i * SLOT_COUNT / masters) for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


class LocalCluster(Topology):
    """A Redis Cluster of ``masters * (1 + replicas_per_master)`` local nodes.

    Slots are split evenly over the masters.  Roles are read live (``ROLE``)
    because failovers change them; only available (running, not paused)
    nodes are considered by the role helpers.

    Args:
        masters: number of masters (>= 1).
        replicas_per_master: replicas attached to each master.
        node_timeout_ms: ``cluster-node-timeout`` (failure detection time).
        password: ``requirepass`` + ``masterauth`` on every node.
        config: extra config for every node.
        tls: TLS only: plaintext off (``port 0``), each ``port`` is a
            ``tls-port``, the cluster bus and replication use TLS
            (``tls-cluster yes``); clients need a certificate signed by
            ``tls.ca_cert``.
        plaintext_port: with ``tls``, every node also keeps a plaintext port
            (``LocalServer.plaintext_port``) beside its ``tls-port``.
        binary / startup_timeout: see :class:`Topology`.
    """

    kind = "cluster"

    def __init__(
        self,
        masters: int = 3,
        replicas_per_master: int = 1,
        *,
        node_timeout_ms: int = 1500,
        password: str | None = None,
        config: ConfigInput | None = None,
        tls: TlsFiles | None = None,
        plaintext_port: bool = False,
        binary: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(binary=binary, startup_timeout=startup_timeout)
        self.tls = tls
        self.plaintext_port = plaintext_port
        if masters < 1 or replicas_per_master < 0:
            raise ValueError("need masters >= 1 and replicas_per_master >= 0")
        self.master_count = masters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self.password = password
        self.config = config_lines(config)

    # -- startup ------------------------------------------------------------

    def _start(self) -> None:
        total = self.master_count * (1 + self.replicas_per_master)
        node_config = [
            f"cluster-node-timeout {self.node_timeout_ms}",
            "cluster-replica-validity-factor 0",
            *([] if self.tls is None else [*tls_only_config(self.tls), "tls-cluster yes"]),
            *self.config,
        ]
        tls = None if self.tls is None else client_context(self.tls)
        nodes = [
            self._track(
                LocalServer(
                    cluster=True,
                    tls=tls,
                    plaintext_port=self.plaintext_port,
                    config=node_config,
                    password=self.password,
                    binary=self.binary,
                    directory=self._new_dir(f"node{i}"),
                    name=f"node{i}",
                    startup_timeout=self.startup_timeout,
                )
            )
            for i in range(total)
        ]
        self._start_all(nodes, self.startup_timeout)
        masters = nodes[: self.master_count]
        use_range = nodes[0].version >= (7, 0, 0)
        for epoch, (node, (lo, hi)) in enumerate(
            zip(masters, _even_split(self.master_count), strict=True), start=1
        ):
            node.command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
            if use_range:
                node.command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
            else:
                node.command("CLUSTER", "ADDSLOTS", *range(lo, hi + 1))
        first = nodes[0]
        for node in nodes[1:]:
            node.command("CLUSTER", "MEET", first.host, first.port, first.bus_port)
        wait_until(
            lambda: all(self._knows_everyone(n, total) for n in nodes),
            timeout=self.startup_timeout,
            what="all cluster nodes to meet",
        )
        for index, replica in enumerate(nodes[self.master_count :]):
            master = masters[index % self.master_count]
            replica.command("CLUSTER", "REPLICATE", self.node_id(master))
        if self.replicas_per_master:
            replicas = nodes[self.master_count :]
            wait_until(
                lambda: all(
                    r.info("replication").get("master_link_status") == "up" for r in replicas
                ),
                timeout=self.startup_timeout,
                what="replicas to sync",
            )
            # The data set is empty; FLUSHALL only moves the replication offset off 0,
            # since Redis >= 7.0 leaves replicas at offset 0 out of CLUSTER SLOTS.
            for master in masters:
                master.command("FLUSHALL")
        self.wait_ok(self.startup_timeout)

    @staticmethod
    def _knows_everyone(node: LocalServer, total: int) -> bool:
        lines = as_str(node.command("CLUSTER", "NODES")).splitlines()
        if len(lines) != total:
            return False
        return all("handshake" not in line and "noaddr" not in line for line in lines)

    # -- health -------------------------------------------------------------

    def _problem(self) -> str | None:
        """Return a description of what is not healthy yet, or ``None``."""
        live = self.available_nodes
        if not live:
            return "no node is running"
        views: dict[int, list[SlotRange]] = {}
        for node in live:
            info = dict(
                line.split(":", 1)
                for line in as_str(node.command("CLUSTER", "INFO")).splitlines()
                if ":" in line
            )
            if info.get("cluster_state", "").strip() != "ok":
                return f"{node.name} cluster_state={info.get('cluster_state', '?').strip()}"
            views[node.port] = _parse_slots(node.command("CLUSTER", "SLOTS"))
        reference = views[live[0].port]
        covered = sum(r.end - r.start + 1 for r in reference)
        if covered != SLOT_COUNT:
            return f"{live[0].name} sees {covered} slots covered"
        for port, view in views.items():
            if view != reference:
                return (
                    f"CLUSTER SLOTS of :{port} differs from :{live[0].port}: {view} != {reference}"
                )
        listed: dict[int, set[int]] = {}
        for entry in reference:
            listed.setdefault(entry.master_port, set()).update(entry.replica_ports)
        for node in live:
            reply = as_list(node.command("ROLE"))
            if as_str(reply[0]) != "slave":
                continue
            status = node.info("replication").get("master_link_status")
            if status != "up":
                return f"{node.name} master_link_status={status}"
            master_port = as_int(reply[2])
            if master_port in listed and node.port not in listed[master_port]:
                # Redis >= 7.0 hides replicas whose replication offset is still 0
                return f"{node.name} not yet listed as replica of :{master_port} in CLUSTER SLOTS"
        return None

    def problem(self) -> str | None:
        """What is unhealthy right now (see :meth:`wait_ok`), or ``None`` if healthy."""
        try:
            return self._problem()
        except (OSError, RespError, ValueError, TypeError, LookupError) as exc:
            return f"{type(exc).__name__}: {exc}"

    def is_ok(self) -> bool:
        """True if the cluster is healthy now (see :meth:`wait_ok`)."""
        return self.problem() is None

    def wait_ok(self, timeout: float = 20.0) -> None:
        """Wait until every available node reports ``cluster_state:ok``, all their
        ``CLUSTER SLOTS`` agree and cover 16384 slots, and every available replica
        has ``master_link_status:up``.  Raises :class:`TopologyTimeout`."""

        def check() -> bool | None:
            problem = self._problem()
            if problem is not None:
                raise ValueError(problem)  # remembered by wait_until for the timeout message
            return True

        wait_until(check, timeout=timeout, what="cluster to be ok")

    # -- nodes and roles ----------------------------------------------------

    @property
    def nodes(self) -> list[LocalServer]:
        """All nodes, in creation order (initially masters first)."""
        return self.servers

    @property
    def available_nodes(self) -> list[LocalServer]:
        """Nodes that are running and not paused."""
        return [n for n in self._servers if n.is_available]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, for a cluster client's startup list."""
        return [n.address for n in self._servers]

    def node_by_port(self, port: int) -> LocalServer:
        """The node listening on ``port`` (``KeyError`` if none)."""
        for node in self._servers:
            if node.port == port:
                return node
        raise KeyError(port)

    def node_id(self, node: LocalServer) -> str:
        """The node's cluster id (``CLUSTER MYID``)."""
        return as_str(node.command("CLUSTER", "MYID"))

    def _roles(self) -> dict[int, tuple[str, int | None]]:
        roles: dict[int, tuple[str, int | None]] = {}
        for node in self.available_nodes:
            reply = as_list(node.command("ROLE"))
            role = as_str(reply[0])
            roles[node.port] = (role, as_int(reply[2]) if role == "slave" else None)
        return roles

    @property
    def masters(self) -> list[LocalServer]:
        """Available nodes whose ``ROLE`` is master (slot-less masters included)."""
        roles = self._roles()
        return [n for n in self._servers if roles.get(n.port, ("",))[0] == "master"]

    @property
    def replicas(self) -> list[LocalServer]:
        """Available nodes whose ``ROLE`` is replica."""
        roles = self._roles()
        return [n for n in self._servers if roles.get(n.port, ("",))[0] == "slave"]

    def replicas_of(self, master: LocalServer) -> list[LocalServer]:
        """Available replicas whose ``ROLE`` names ``master``'s port."""
        roles = self._roles()
        return [n for n in self._servers if roles.get(n.port, ("", None)) == ("slave", master.port)]

    def slots(self, via: LocalServer | None = None) -> list[SlotRange]:
        """``CLUSTER SLOTS`` as seen by ``via`` (default: first available node)."""
        node = via or self._any_node()
        return _parse_slots(node.command("CLUSTER", "SLOTS"))

    def node_for_slot(self, slot: int) -> LocalServer:
        """The master currently serving ``slot`` (per the first available node)."""
        for entry in self.slots():
            if entry.start <= slot <= entry.end:
                return self.node_by_port(entry.master_port)
        raise LookupError(f"slot {slot} is not served")

    def keyslot(self, key: str | bytes) -> int:
        """Hash slot of ``key`` (``CLUSTER KEYSLOT`` on a node)."""
        return as_int(self._any_node().command("CLUSTER", "KEYSLOT", key))

    def node_for_key(self, key: str | bytes) -> LocalServer:
        """The master currently serving ``key``."""
        return self.node_for_slot(self.keyslot(key))

    def _any_node(self) -> LocalServer:
        live = self.available_nodes
        if not live:
            raise RuntimeError("no cluster node is available")
        return live[0]

    # -- faults -------------------------------------------------------------

    def failover(
        self, replica: LocalServer, mode: str | None = None, *, timeout: float = 20.0
    ) -> None:
        """``CLUSTER FAILOVER [FORCE|TAKEOVER]`` on ``replica``; wait until it is
        master and the cluster is ok."""
        if mode is not None:
            mode = mode.upper()
        if mode not in _FAILOVER_MODES:
            raise ValueError(f"mode must be one of {_FAILOVER_MODES}")
        if replica.role() != "slave":
            raise ValueError(f"{replica!r} is not a replica")
        args: list[CommandArg] = ["CLUSTER", "FAILOVER"]
        if mode is not None:
            args.append(mode)
        replica.command(*args)
        wait_until(
            lambda: replica.role() == "master",
            timeout=timeout,
            what=f"{replica.name} to become master",
        )
        self.wait_ok(timeout)

    def kill(self, node: LocalServer) -> None:
        """SIGKILL one node."""
        node.kill()

    def stop_node(self, node: LocalServer) -> None:
        """Gracefully stop one node (it can be restarted with :meth:`restart`)."""
        node.stop()

    def restart(self, node: LocalServer, *, wait_ok: bool = False, timeout: float = 20.0) -> None:
        """(Re)start one node on its port with its ``nodes.conf``; optionally :meth:`wait_ok`."""
        node.restart()
        if wait_ok:
            self.wait_ok(timeout)

    def pause(self, node: LocalServer) -> None:
        """SIGSTOP one node."""
        node.pause()

    def resume(self, node: LocalServer) -> None:
        """SIGCONT one node."""
        node.resume()

    # -- resharding ---------------------------------------------------------

    def begin_migration(self, slot: int, target: LocalServer) -> SlotMigration:
        """Mark ``slot`` IMPORTING on ``target`` and MIGRATING on its owner.

        Returns a :class:`SlotMigration` to move keys and finish step by step,
        so tests can run traffic while the slot is half-moved.
        """
        migration = SlotMigration(self, slot, self.node_for_slot(slot), target)
        migration.begin()
        return migration

    def migrate_slot(
        self, slot: int, target: LocalServer, *, batch: int = 100, timeout: float = 20.0
    ) -> int:
        """Move ``slot`` with all its keys to master ``target``; returns keys moved.

        No-op if ``target`` already owns the slot.  Waits until every node
        agrees on the new owner.
        """
        if self.node_for_slot(slot).port == target.port:
            return 0
        migration = self.begin_migration(slot, target)
        moved = migration.move_keys(batch=batch)
        migration.finish(timeout=timeout)
        return moved

    def _describe(self) -> str:
        return (
            f"masters={self.master_count} replicas_per_master={self.replicas_per_master} "
            + super()._describe()
        )


class SlotMigration:
    """A slot migration in progress (``begin`` -> ``move_keys``/``move_batch`` -> ``finish``)."""

    def __init__(
        self, cluster: LocalCluster, slot: int, source: LocalServer, target: LocalServer
    ) -> None:
        if not 0 <= slot < SLOT_COUNT:
            raise ValueError(f"slot {slot} out of range")
        if source.port == target.port:
            raise ValueError("source and target are the same node")
        if target.role() != "master":
            raise ValueError(f"target {target!r} is not a master")
        self.cluster = cluster
        self.slot = slot
        self.source = source
        self.target = target
        self.source_id = cluster.node_id(source)
        self.target_id = cluster.node_id(target)
        self.moved = 0

    def __repr__(self) -> str:
        return (
            f"<SlotMigration slot={self.slot} {self.source.port}->{self.target.port} "
            f"moved={self.moved}>"
        )

    def begin(self) -> None:
        """``SETSLOT IMPORTING`` on the target, then ``SETSLOT MIGRATING`` on the source."""
        self.target.command("CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source_id)
        self.source.command("CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target_id)

    def keys_left(self) -> int:
        """``CLUSTER COUNTKEYSINSLOT`` on the source."""
        return as_int(self.source.command("CLUSTER", "COUNTKEYSINSLOT", self.slot))

    def move_batch(self, count: int = 100, *, timeout_ms: int = 5000) -> int:
        """MIGRATE up to ``count`` keys of the slot to the target; returns how many."""
        keys = as_list(self.source.command("CLUSTER", "GETKEYSINSLOT", self.slot, count))
        if not keys:
            return 0
        args: list[CommandArg] = ["MIGRATE", self.target.host, self.target.port, "", 0, timeout_ms]
        if self.source.password is not None:
            if self.source.username is not None:
                args += ["AUTH2", self.source.username, self.source.password]
            else:
                args += ["AUTH", self.source.password]
        args += ["REPLACE", "KEYS", *(as_str(k) for k in keys)]
        self.source.command(*args, timeout=timeout_ms / 1000 + 5)
        self.moved += len(keys)
        return len(keys)

    def move_keys(self, batch: int = 100, *, max_batches: int = 100_000) -> int:
        """MIGRATE batches until the slot is empty on the source; returns keys moved."""
        total = 0
        for _ in range(max_batches):
            count = self.move_batch(batch)
            if count == 0:
                return total
            total += count
        raise RuntimeError(f"slot {self.slot} still has keys after {max_batches} batches")

    def finish(self, *, wait: bool = True, timeout: float = 20.0) -> None:
        """``SETSLOT NODE target`` on target, source, then every other master;
        with ``wait`` block until the cluster agrees (:meth:`LocalCluster.wait_ok`)."""
        order = [self.target, self.source] + [
            m for m in self.cluster.masters if m.port not in (self.target.port, self.source.port)
        ]
        for node in order:
            node.command("CLUSTER", "SETSLOT", self.slot, "NODE", self.target_id)
        if wait:
            self.cluster.wait_ok(timeout)

    def abort(self) -> None:
        """Clear the IMPORTING/MIGRATING state (``SETSLOT STABLE``) without moving ownership."""
        for node in (self.target, self.source):
            node.command("CLUSTER", "SETSLOT", self.slot, "STABLE")
