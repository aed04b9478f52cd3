"""A single local Redis server, optionally password- or ACL-protected."""

from __future__ import annotations

from urllib.parse import quote

from .process import ConfigInput, LocalServer, config_lines
from .topology import Topology

__all__ = ["LocalStandalone"]


class LocalStandalone(Topology):
    """One ``redis-server`` on 127.0.0.1.

    Args:
        password: with no ``username``: ``requirepass``.  With ``username``:
            an ACL user ``username`` with that password and all permissions is
            created and the ``default`` user is switched off.
        username: ACL user name (requires ``password``).
        config: extra config lines (see :func:`clustermgr.testing.config_lines`).
        port: fixed port (default: a free one).
        binary / startup_timeout: see :class:`Topology`.
    """

    kind = "standalone"

    def __init__(
        self,
        *,
        password: str | None = None,
        username: str | None = None,
        config: ConfigInput | None = None,
        port: int | None = None,
        binary: str | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        super().__init__(binary=binary, startup_timeout=startup_timeout)
        if username is not None and password is None:
            raise ValueError("username requires a password")
        self.password = password
        self.username = username
        self.config = config_lines(config)
        self.fixed_port = port
        self._server: LocalServer | None = None

    def _start(self) -> None:
        lines = list(self.config)
        if self.username is not None and self.password is not None:
            acl = [self.username, "on", f">{self.password}", "~*", "&*", "+@all"]
            lines = [*config_lines([("user", acl), ("user", ["default", "off"])]), *lines]
        server = self._track(
            LocalServer(
                port=self.fixed_port,
                config=lines,
                password=self.password,
                username=self.username,
                binary=self.binary,
                directory=self._new_dir("server"),
                name="standalone",
                startup_timeout=self.startup_timeout,
            )
        )
        self._server = server
        server.start()

    @property
    def server(self) -> LocalServer:
        """The :class:`LocalServer` (raises if not started)."""
        if self._server is None:
            raise RuntimeError("LocalStandalone is not started")
        return self._server

    @property
    def host(self) -> str:
        """Always ``"127.0.0.1"``."""
        return self.server.host

    @property
    def port(self) -> int:
        """The server's port."""
        return self.server.port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.server.address

    @property
    def url(self) -> str:
        """``redis://[user:password@]127.0.0.1:port`` for clients that take URLs."""
        auth = ""
        if self.password is not None:
            user = quote(self.username or "", safe="")
            auth = f"{user}:{quote(self.password, safe='')}@"
        return f"redis://{auth}{self.host}:{self.port}"

    def kill(self) -> None:
        """SIGKILL the server."""
        self.server.kill()

    def restart(self) -> None:
        """Restart the server on the same port."""
        self.server.restart()

    def pause(self) -> None:
        """SIGSTOP the server."""
        self.server.pause()

    def resume(self) -> None:
        """SIGCONT the server."""
        self.server.resume()
