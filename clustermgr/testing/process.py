"""One local ``redis-server`` (or sentinel) process: config, start, stop, signals.

A :class:`LocalServer` writes its config (:mod:`.serverconfig`) into its own
directory, starts the binary with :class:`subprocess.Popen` bound to
127.0.0.1 on a free port (:mod:`.ports`), and only ever signals the PID it
started (:mod:`.serverprocess`).  On Linux the child gets
``PR_SET_PDEATHSIG=SIGKILL`` so it dies with the Python process
(:mod:`.children`), so starting or restarting servers from short-lived
threads (e.g. ``asyncio.to_thread``) is safe.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from .binaries import find_server_binary, server_version
from .children import death_signal_preexec, spawn
from .errors import ServerStartError
from .ports import BUS_PORT_OFFSET, MAX_PORT, find_free_port, port_is_free
from .resp import CommandArg, RespConnection, RespError, RespValue, as_list, as_str, parse_info
from .serverconfig import ConfigInput, ConfigValue, base_config, config_lines
from .serverprocess import ServerProcess

__all__ = [
    "MAX_PORT",
    "ConfigInput",
    "ConfigValue",
    "LocalServer",
    "config_lines",
    "find_free_port",
    "port_is_free",
]

_HOST = "127.0.0.1"
_LOG_NAME = "server.log"
_STDOUT_NAME = "stdout.log"
_ADDR_IN_USE = "Address already in use"


# -- process helpers ---------------------------------------------------------


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path: Path, lines: int = 30, since: int = 0) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(since, size - 16384))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


# -- the server --------------------------------------------------------------


class LocalServer:
    """One ``redis-server`` (or, with ``sentinel=True``, sentinel) process on 127.0.0.1.

    Args:
        port: fixed port; ``None`` picks a free one (and picks another if the
            bind races with some other process).  The port is kept for restarts.
        config: extra config (see :func:`config_lines`), appended last so it
            overrides the defaults.
        sentinel: start the binary with ``--sentinel``.
        cluster: write ``cluster-enabled yes`` / ``cluster-config-file
            nodes.conf`` and pick a port whose bus port (+10000) is free.
        password / username: ``requirepass`` (+ ``masterauth``) when only a
            password is given; the launcher authenticates its admin commands
            with them.  ACL users must be set up through ``config``.
        binary: server binary; default :func:`find_server_binary`.
        directory: working dir (config, log, ``nodes.conf``); default a fresh
            temp dir removed by :meth:`cleanup`.  A given dir is kept.
        name: label used in ``repr`` and errors.
        startup_timeout: seconds :meth:`start` waits for ``PING``.
        die_with_parent: set ``PR_SET_PDEATHSIG`` on Linux.
        tls: serve TLS only: plaintext is off (``port 0``), :attr:`port` is the
            ``tls-port``, and admin commands use this client context. The
            certificate lines come in ``config`` (see
            :func:`clustermgr.testing.tls_only_config`).
        plaintext_port: with ``tls``, also keep a plaintext port (picked free,
            see :attr:`plaintext_port`); admin commands still use TLS.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        config: ConfigInput | None = None,
        sentinel: bool = False,
        cluster: bool = False,
        password: str | None = None,
        username: str | None = None,
        binary: str | None = None,
        directory: str | os.PathLike[str] | None = None,
        name: str | None = None,
        startup_timeout: float = 10.0,
        die_with_parent: bool = True,
        tls: ssl.SSLContext | None = None,
        plaintext_port: bool = False,
    ) -> None:
        if plaintext_port and tls is None:
            raise ValueError("plaintext_port needs tls (the plaintext port is the default)")
        self.host = _HOST
        self.tls = tls
        #: The extra plaintext port of a TLS server (``plaintext_port=True``), else None.
        self.plaintext_port = find_free_port() if plaintext_port else None
        self.sentinel = sentinel
        self.cluster = cluster
        self.password = password
        self.username = username
        self.binary = find_server_binary(binary)
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self.extra_config = config_lines(config)
        self._port_pinned = port is not None
        self._port = port if port is not None else find_free_port(bus=cluster)
        self.name = name or ("sentinel" if sentinel else "redis")
        if directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix=f"clustermgr-{self.name}-"))
            self._owns_directory = True
        else:
            self.directory = Path(directory)
            self.directory.mkdir(parents=True, exist_ok=True)
            self._owns_directory = False
        self._process = ServerProcess()
        self._config_written = False
        self._log_offsets = (0, 0)

    # -- properties ---------------------------------------------------------

    @property
    def port(self) -> int:
        """TCP port the server listens on."""
        return self._port

    @property
    def bus_port(self) -> int:
        """Cluster bus port (``port + 10000``)."""
        return self._port + BUS_PORT_OFFSET

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return (self.host, self._port)

    @property
    def pid(self) -> int | None:
        """PID of the running process, else of the last one (``None`` if never started)."""
        return self._process.pid

    @property
    def is_running(self) -> bool:
        """True while the started process has not exited (paused counts as running)."""
        return self._process.running

    @property
    def is_paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._process.paused

    @property
    def is_available(self) -> bool:
        """Running and not paused (i.e. expected to answer)."""
        return self._process.running and not self._process.paused

    @property
    def config_path(self) -> Path:
        """Path of the generated config file."""
        return self.directory / ("sentinel.conf" if self.sentinel else "redis.conf")

    @property
    def log_path(self) -> Path:
        """Path of the server log file."""
        return self.directory / _LOG_NAME

    @property
    def version(self) -> tuple[int, int, int]:
        """``(major, minor, patch)`` of the binary."""
        return server_version(self.binary)

    def __repr__(self) -> str:
        if self.is_running:
            state = f"pid={self.pid} {'paused' if self._process.paused else 'running'}"
        else:
            state = "stopped"
        return f"<LocalServer {self.name} {self.host}:{self._port} {state}>"

    # -- config -------------------------------------------------------------

    def write_config(self) -> None:
        """(Re)write the config file with the current port; keeps other files in the dir."""
        base = base_config(
            host=self.host, port=self._port, directory=self.directory, log_path=self.log_path,
            tls=self.tls is not None, plaintext_port=self.plaintext_port,
            sentinel=self.sentinel, cluster=self.cluster, password=self.password,
            username=self.username, version=None if self.sentinel else self.version,
        )
        text = "\n".join([*base, *self.extra_config]) + "\n"
        self.config_path.write_text(text)
        self._config_written = True

    # -- lifecycle ----------------------------------------------------------

    def launch(self) -> None:
        """Spawn the process without waiting; pair with :meth:`wait_ready`.

        The config file is written on first launch only, so a restart reuses
        whatever the server rewrote (e.g. sentinel state, ``CONFIG REWRITE``).
        """
        if self.is_running:
            raise RuntimeError(f"{self!r} is already running")
        self._process.reap()
        if not self._config_written:
            self.write_config()
        args = [self.binary, str(self.config_path)]
        if self.sentinel:
            args.append("--sentinel")
        preexec = death_signal_preexec() if self.die_with_parent else None
        self._log_offsets = (_size(self.log_path), _size(self.directory / _STDOUT_NAME))
        with (self.directory / _STDOUT_NAME).open("ab") as out:

            def popen() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    args,
                    cwd=str(self.directory),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=preexec,
                )

            self._process.track(popen() if preexec is None else spawn(popen))

    def wait_ready(self, timeout: float | None = None, *, bind_retries: int = 5) -> None:
        """Block until the server answers ``PING`` as the process we started.

        If the bind lost a race (``EADDRINUSE``), relaunch on a new port (or,
        for a pinned port, the same one after a short pause), at most
        ``bind_retries`` times.  Raises :class:`ServerStartError` carrying the
        log tail on failure or timeout (the process is killed then).
        """
        budget = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        retries = 0
        while True:
            if not self._process.tracked:
                raise ServerStartError(f"{self!r} was not launched")
            if not self._process.running:
                if retries < bind_retries and self._bind_failed():
                    retries += 1
                    self._relaunch_after_bind_failure()
                    continue
                message = self._failure_message("exited during startup")
                self._process.reap()
                raise ServerStartError(message)
            if self._answers_as_us():
                self._port_pinned = True
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerStartError(self._failure_message(f"not ready within {budget:.1f}s"))
            time.sleep(0.02)

    def _bind_failed(self) -> bool:
        """Did the last launch fail with EADDRINUSE (judged from its own log output)?"""
        log_since, out_since = self._log_offsets
        return _ADDR_IN_USE in _tail(self.log_path, 20, log_since) or _ADDR_IN_USE in _tail(
            self.directory / _STDOUT_NAME, 20, out_since
        )

    def _relaunch_after_bind_failure(self) -> None:
        self._process.reap()
        marker = f"--- clustermgr: bind failed on {self._port}, retrying ---\n"
        with contextlib.suppress(OSError), self.log_path.open("a") as fh:
            fh.write(marker)
        if self._port_pinned:
            time.sleep(0.3)
        else:
            self._port = find_free_port(bus=self.cluster)
            self.write_config()
        self.launch()

    def _answers_as_us(self) -> bool:
        try:
            with self.connect(timeout=0.5) as conn:
                if conn.command("PING") != "PONG":
                    return False
                info = parse_info(as_str(conn.command("INFO", "server")))
        except RespError as exc:
            if exc.kind in ("LOADING", "BUSY", "MASTERDOWN"):
                return False
            raise ServerStartError(self._failure_message(f"PING failed: {exc}")) from exc
        except OSError:
            return False
        return self._process.tracked and info.get("process_id") == str(self._process.pid)

    def _failure_message(self, what: str) -> str:
        parts = [f"{self.name} on {self.host}:{self._port} ({self.binary}) {what}"]
        if self._process.returncode is not None:
            parts.append(f"exit code {self._process.returncode}")
        log = _tail(self.log_path)
        out = _tail(self.directory / _STDOUT_NAME)
        if log:
            parts.append(f"--- {self.log_path} (tail) ---\n{log}")
        if out:
            parts.append(f"--- stdout/stderr (tail) ---\n{out}")
        return "\n".join(parts)

    def start(self, timeout: float | None = None) -> LocalServer:
        """Launch the process and wait until it is ready; returns ``self``."""
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the process we started (if alive) and reap it."""
        self._process.kill()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop gracefully with SIGTERM, then SIGKILL after ``timeout``; reap.

        Data nodes of Redis >= 7 are configured with ``shutdown-on-sigterm
        nosave now`` so SIGTERM does not save or wait for lagging replicas.
        """
        self._process.stop(timeout)

    def terminate(self) -> None:
        """Send SIGTERM without waiting (resuming first if paused); reap with :meth:`stop`."""
        self._process.terminate()

    def detach(self) -> None:
        """Stop tracking the process: it is no longer killed when this Python process exits."""
        self._process.detach()

    def restart(self, timeout: float | None = None) -> LocalServer:
        """Stop (if running) and start again on the same port with the same dir."""
        self.stop()
        self._port_pinned = True
        return self.start(timeout)

    def pause(self) -> None:
        """Freeze the process with SIGSTOP (it keeps its sockets but stops answering)."""
        if not self._process.pause():
            raise RuntimeError(f"{self!r} is not running")

    def resume(self) -> None:
        """Continue a paused process with SIGCONT."""
        self._process.resume()

    def cleanup(self) -> None:
        """Stop the process and remove the directory if this server created it."""
        self.stop()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        if not self.is_running:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    # -- admin commands -----------------------------------------------------

    def connect(self, timeout: float = 5.0) -> RespConnection:
        """Open an authenticated admin :class:`RespConnection` (caller closes it)."""
        return RespConnection(
            self.host,
            self._port,
            timeout=timeout,
            password=self.password,
            username=self.username,
            ssl_context=self.tls,
        )

    def command(self, *args: CommandArg, timeout: float = 5.0) -> RespValue:
        """Run one admin command on a fresh connection and return the reply."""
        with self.connect(timeout) as conn:
            return conn.command(*args)

    def ping(self, timeout: float = 1.0) -> bool:
        """True if the server answers ``PING`` now."""
        try:
            return self.command("PING", timeout=timeout) == "PONG"
        except (OSError, RespError):
            return False

    def info(self, section: str | None = None) -> dict[str, str]:
        """``INFO [section]`` parsed into a dict."""
        args: list[CommandArg] = ["INFO"] if section is None else ["INFO", section]
        return parse_info(as_str(self.command(*args)))

    def role(self) -> str:
        """First element of ``ROLE``: ``"master"``, ``"slave"`` or ``"sentinel"``."""
        return as_str(as_list(self.command("ROLE"))[0])
