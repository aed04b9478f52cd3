"""redis.conf text: the user's extra config normalised, and a local server's base config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

__all__ = ["ConfigInput", "ConfigValue", "base_config", "config_lines"]

ConfigValue: TypeAlias = str | int | Sequence[str | int]
"""A config value: one argument (quoted as needed) or a sequence of arguments."""

ConfigInput: TypeAlias = Mapping[str, ConfigValue] | Iterable[str | tuple[str, ConfigValue]]
"""Extra config: a mapping, or an iterable of raw lines / ``(directive, value)`` pairs."""


def _quote(value: str | int) -> str:
    text = str(value)
    if text and not any(ch in text for ch in " \t\r\n\"'\\"):
        return text
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _directive(key: str, value: ConfigValue) -> str:
    if isinstance(value, int):
        return f"{key} {value}"
    if isinstance(value, str):
        return f"{key} {value}" if value else f'{key} ""'
    return " ".join([key, *(_quote(v) for v in value)])


def config_lines(config: ConfigInput | None) -> list[str]:
    """Normalise ``config`` into redis.conf lines.

    * plain strings are raw lines: ``"appendonly yes"``;
    * a ``str``/``int`` value (in a mapping or a ``(directive, value)`` pair) is
      written as is, so it may hold several words: ``("replicaof", "127.0.0.1
      6380")``; an empty string becomes ``""``;
    * a sequence value is a list of arguments, each quoted when needed:
      ``("requirepass", ["secret with spaces"])``, ``("save", [60, 1000])``.
    """
    if config is None:
        return []
    if isinstance(config, Mapping):
        return [_directive(key, value) for key, value in config.items()]
    lines: list[str] = []
    for item in config:
        if isinstance(item, str):
            lines.append(item)
        else:
            lines.append(_directive(item[0], item[1]))
    return lines


def base_config(
    *,
    host: str,
    port: int,
    directory: Path,
    log_path: Path,
    tls: bool,
    plaintext_port: int | None,
    sentinel: bool,
    cluster: bool,
    password: str | None,
    username: str | None,
    version: tuple[int, int, int] | None,
) -> list[str]:
    """The lines every local server starts with (the user's config comes after them).

    ``tls``: ``port`` is the ``tls-port`` and plaintext is off unless
    ``plaintext_port`` is given. ``version`` (of a data node's binary) decides
    the options only newer servers know.
    """
    listen = [f"port {port}"]
    if tls:
        listen = [f"port {plaintext_port or 0}", f"tls-port {port}"]
    lines = [
        *listen,
        f"bind {host}",
        "protected-mode no",
        "daemonize no",
        f"dir {_quote(str(directory))}",
        f"logfile {_quote(str(log_path))}",
    ]
    if not sentinel:
        lines += ['save ""', "appendonly no", "repl-diskless-sync-delay 0"]
        if version is not None and version >= (7, 0, 0):
            lines.append("shutdown-on-sigterm nosave now")
        if cluster:
            lines += [
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                f"cluster-announce-ip {host}",
            ]
        if password is not None:
            lines.append(f"masterauth {_quote(password)}")
            if username is not None:
                lines.append(f"masteruser {_quote(username)}")
    if password is not None and username is None:
        lines.append(f"requirepass {_quote(password)}")
    return lines
