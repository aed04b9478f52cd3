"""A local Sentinel-managed group: one master, replicas and sentinels."""

from __future__ import annotations

import secrets

from ._wait import wait_until
from .process import ConfigInput, LocalServer, config_lines
from .resp import RespError, RespValue, as_int, as_list, as_str
from .tls import TlsFiles, client_context, tls_only_config
from .topology import Topology

__all__ = ["LocalSentinelGroup"]


def _pairs(reply: RespValue) -> dict[str, str]:
    items = as_list(reply)
    return {as_str(items[i]): as_str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


_BAD_FLAGS = ("s_down", "o_down", "disconnected", "failover_in_progress")


def _healthy(flags: str) -> bool:
    return not any(bad in flags.split(",") for bad in _BAD_FLAGS)


class LocalSentinelGroup(Topology):
    """A master, ``replicas`` replicas and ``sentinels`` sentinels monitoring ``service``.

    Sentinels are pre-seeded with each other and the replicas (``known-sentinel``
    / ``known-replica``) so they agree within a second of starting.

    Args:
        service: the monitored master name.
        replicas: number of replicas of the master.
        sentinels: number of sentinel processes.
        quorum: sentinel quorum.
        down_after_ms: ``sentinel down-after-milliseconds``.
        failover_timeout_ms: ``sentinel failover-timeout``.
        password: ``requirepass``/``masterauth`` on data nodes and
            ``sentinel auth-pass`` on the sentinels.
        sentinel_password: ``requirepass`` on the sentinels.
        config: extra config for the data nodes.
        sentinel_config: extra config lines for the sentinels.
        tls: TLS only, on every process: plaintext off (``port 0``), each
            ``port`` is a ``tls-port``, replication and sentinel links use TLS,
            clients need a certificate signed by ``tls.ca_cert``.
        binary / startup_timeout: see :class:`Topology`.
    """

    kind = "sentinel"

    def __init__(
        self,
        service: str = "mymaster",
        replicas: int = 1,
        sentinels: int = 3,
        quorum: int = 2,
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        password: str | None = None,
        sentinel_password: str | None = None,
        config: ConfigInput | None = None,
        sentinel_config: ConfigInput | None = None,
        tls: TlsFiles | None = None,
        binary: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(binary=binary, startup_timeout=startup_timeout)
        if replicas < 0 or sentinels < 1 or not 1 <= quorum <= sentinels:
            raise ValueError("need replicas >= 0, sentinels >= 1 and 1 <= quorum <= sentinels")
        self.service = service
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.password = password
        self.sentinel_password = sentinel_password
        self.config = config_lines(config)
        self.sentinel_config = config_lines(sentinel_config)
        self.tls = tls
        self._tls_lines = [] if tls is None else tls_only_config(tls)
        self._tls_context = None if tls is None else client_context(tls)
        self._data: list[LocalServer] = []
        self._sentinels: list[LocalServer] = []

    # -- startup ------------------------------------------------------------

    def _start(self) -> None:
        master = self._data_node("master", [])
        master.start()  # first: its final port goes into the replicas' config
        replicas = [
            self._data_node(f"replica{i}", [f"replicaof {master.host} {master.port}"])
            for i in range(self.replica_count)
        ]
        self._start_all(replicas, self.startup_timeout)
        wait_until(
            lambda: all(r.info("replication").get("master_link_status") == "up" for r in replicas),
            timeout=self.startup_timeout,
            what="replicas to sync with the master",
        )
        self._sentinels = [
            self._track(
                LocalServer(
                    sentinel=True,
                    tls=self._tls_context,
                    password=self.sentinel_password,
                    binary=self.binary,
                    directory=self._new_dir(f"sentinel{i}"),
                    name=f"sentinel{i}",
                    startup_timeout=self.startup_timeout,
                )
            )
            for i in range(self.sentinel_count)
        ]
        ids = [secrets.token_hex(20) for _ in self._sentinels]
        for index, sentinel in enumerate(self._sentinels):
            sentinel.extra_config = self._sentinel_lines(master, replicas, ids, index)
        planned = [sentinel.port for sentinel in self._sentinels]
        self._start_all(self._sentinels, self.startup_timeout)
        if [sentinel.port for sentinel in self._sentinels] != planned:
            # A sentinel lost a port race and moved, so the seeded peer lists are
            # stale: restart all sentinels from fresh configs on their final ports.
            for sentinel in self._sentinels:
                sentinel.stop()
            for index, sentinel in enumerate(self._sentinels):
                sentinel.extra_config = self._sentinel_lines(master, replicas, ids, index)
                sentinel.write_config()
            self._start_all(self._sentinels, self.startup_timeout)
        self.wait_ready(self.startup_timeout)

    def _data_node(self, name: str, lines: list[str]) -> LocalServer:
        server = LocalServer(
            config=["replica-announce-ip 127.0.0.1", *lines, *self._tls_lines, *self.config],
            tls=self._tls_context,
            password=self.password,
            binary=self.binary,
            directory=self._new_dir(name),
            name=name,
            startup_timeout=self.startup_timeout,
        )
        self._data.append(server)
        return self._track(server)

    def _sentinel_lines(
        self, master: LocalServer, replicas: list[LocalServer], ids: list[str], index: int
    ) -> list[str]:
        svc = self.service
        lines = config_lines(
            [
                ("sentinel", ["myid", ids[index]]),
                ("sentinel", ["resolve-hostnames", "no"]),
                ("sentinel", ["announce-ip", "127.0.0.1"]),
                ("sentinel", ["monitor", svc, master.host, master.port, self.quorum]),
                ("sentinel", ["down-after-milliseconds", svc, self.down_after_ms]),
                ("sentinel", ["failover-timeout", svc, self.failover_timeout_ms]),
                ("sentinel", ["parallel-syncs", svc, 1]),
            ]
        )
        if self.password is not None:
            lines += config_lines([("sentinel", ["auth-pass", svc, self.password])])
        if self.sentinel_password is not None:
            lines += config_lines([("sentinel", ["sentinel-pass", self.sentinel_password])])
        for replica in replicas:
            lines += config_lines(
                [("sentinel", ["known-replica", svc, replica.host, replica.port])]
            )
        for other, other_id in zip(self._sentinels, ids, strict=True):
            if other is not self._sentinels[index]:
                lines += config_lines(
                    [("sentinel", ["known-sentinel", svc, other.host, other.port, other_id])]
                )
        return self._tls_lines + lines + self.sentinel_config

    # -- health -------------------------------------------------------------

    def _problem(self) -> str | None:
        live = self.available_sentinels
        if not live:
            return "no sentinel is available"
        want_sentinels = len(self._sentinels) - 1
        for sentinel in live:
            state = _pairs(sentinel.command("SENTINEL", "MASTER", self.service))
            if not _healthy(state.get("flags", "")):
                return f"{sentinel.name}: master flags {state.get('flags')}"
            reps = [
                _pairs(r) for r in as_list(sentinel.command("SENTINEL", "REPLICAS", self.service))
            ]
            good_reps = [r for r in reps if _healthy(r.get("flags", ""))]
            if len(good_reps) < self.replica_count:
                return f"{sentinel.name}: {len(good_reps)}/{self.replica_count} replicas ok"
            sents = [
                _pairs(s) for s in as_list(sentinel.command("SENTINEL", "SENTINELS", self.service))
            ]
            good_sents = [s for s in sents if _healthy(s.get("flags", ""))]
            if len(good_sents) < want_sentinels:
                return f"{sentinel.name}: {len(good_sents)}/{want_sentinels} sentinels ok"
        return None

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until every available sentinel sees a healthy master, all replicas
        and all other sentinels.  Raises :class:`TopologyTimeout`."""
        wait_until(
            lambda: self._problem() is None,
            timeout=timeout,
            what=f"sentinels to agree on {self.service!r}",
        )

    # -- members ------------------------------------------------------------

    @property
    def sentinels(self) -> list[LocalServer]:
        """All sentinel processes."""
        return list(self._sentinels)

    @property
    def available_sentinels(self) -> list[LocalServer]:
        """Sentinels that are running and not paused."""
        return [s for s in self._sentinels if s.is_available]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every sentinel."""
        return [s.address for s in self._sentinels]

    @property
    def data_nodes(self) -> list[LocalServer]:
        """The master and replicas as created (roles may have changed since)."""
        return list(self._data)

    def node_by_port(self, port: int) -> LocalServer:
        """The data node or sentinel listening on ``port`` (``KeyError`` if none)."""
        for server in self._servers:
            if server.port == port:
                return server
        raise KeyError(port)

    @property
    def master_address(self) -> tuple[str, int]:
        """``SENTINEL GET-MASTER-ADDR-BY-NAME`` from the first sentinel that answers."""
        errors: list[str] = []
        for sentinel in self.available_sentinels:
            try:
                reply = as_list(
                    sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                )
            except (OSError, RespError, TypeError) as exc:
                errors.append(f"{sentinel.name}: {exc}")
                continue
            return (as_str(reply[0]), as_int(reply[1]))
        raise RuntimeError(f"no sentinel answered for {self.service!r}: {errors}")

    @property
    def master(self) -> LocalServer:
        """The data node that the sentinels currently name as master."""
        return self.node_by_port(self.master_address[1])

    @property
    def replicas(self) -> list[LocalServer]:
        """Data nodes other than the current master."""
        port = self.master_address[1]
        return [s for s in self._data if s.port != port]

    # -- faults -------------------------------------------------------------

    def _sentinel_views(self) -> set[int]:
        ports: set[int] = set()
        for sentinel in self.available_sentinels:
            reply = as_list(sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service))
            ports.add(as_int(reply[1]))
        return ports

    def wait_for_master(self, *, not_port: int | None = None, timeout: float = 30.0) -> LocalServer:
        """Wait until all available sentinels name the same master (other than
        ``not_port``, if given) and it answers ``ROLE`` master; return it."""

        def check() -> LocalServer | None:
            views = self._sentinel_views()
            if len(views) != 1:
                return None
            port = views.pop()
            if port == not_port:
                return None
            node = self.node_by_port(port)
            return node if node.is_available and node.role() == "master" else None

        return wait_until(check, timeout=timeout, what=f"a new master for {self.service!r}")

    def failover(self, *, timeout: float = 30.0, demote_old_master: bool = False) -> LocalServer:
        """``SENTINEL FAILOVER`` and wait until sentinels agree on a new master
        that answers ``ROLE`` master; returns it.

        Sentinel turns the old master into a replica only ~10 s later; with
        ``demote_old_master=True`` this helper sends it ``REPLICAOF`` itself
        and waits until its link is up and the group is ready again.
        """
        old = self.master
        sentinel = self.available_sentinels[0]

        def trigger() -> bool:
            try:
                sentinel.command("SENTINEL", "FAILOVER", self.service)
            except RespError as exc:
                if exc.kind in ("INPROG", "NOGOODSLAVE"):
                    return False
                raise
            return True

        wait_until(trigger, timeout=timeout, interval=0.2, what="SENTINEL FAILOVER accepted")
        new = self.wait_for_master(not_port=old.port, timeout=timeout)
        if demote_old_master and old.is_available:
            self.demote(old, new, timeout=timeout)
        return new

    def demote(
        self, server: LocalServer, master: LocalServer | None = None, *, timeout: float = 30.0
    ) -> None:
        """Make ``server`` a replica of ``master`` (default: current master) and
        wait until its link is up and the group is ready."""
        target = master or self.master
        server.command("REPLICAOF", target.host, target.port)
        server.command("CONFIG", "REWRITE")
        wait_until(
            lambda: server.info("replication").get("master_link_status") == "up",
            timeout=timeout,
            what=f"{server.name} to replicate from {target.name}",
        )
        self.wait_ready(timeout)

    def kill(self, server: LocalServer) -> None:
        """SIGKILL a data node or sentinel."""
        server.kill()

    def restart(self, server: LocalServer) -> None:
        """(Re)start a data node or sentinel on its port, keeping its dir and config."""
        server.restart()

    def pause(self, server: LocalServer) -> None:
        """SIGSTOP a data node or sentinel."""
        server.pause()

    def resume(self, server: LocalServer) -> None:
        """SIGCONT a data node or sentinel."""
        server.resume()

    def _describe(self) -> str:
        data = ",".join(str(s.port) for s in self._data)
        sents = ",".join(str(s.port) for s in self._sentinels)
        return f"service={self.service!r} data={data} sentinels={sents}"
