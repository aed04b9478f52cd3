"""Every CLI subcommand against TLS-only topologies: TLS and credentials are kept
for every connection it opens (the per-node ones included).

The topologies run with ``port 0`` and a ``tls-port`` (see
:class:`clustermgr.testing.LocalCluster` / :class:`LocalSentinelGroup` with
``tls=``): the server cannot accept a plaintext connection, so a command that
works used TLS throughout. Each command is run twice: with the TLS options
(CA, client certificate and key), and with nothing but a ``rediss://`` URL
(the test CA trusted through ``SSL_CERT_FILE``; client certificates are
optional on these servers).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clustermgr.cli import main
from clustermgr.testing import (
    LocalCluster,
    LocalSentinelGroup,
    TlsFiles,
    make_certificates,
    tls_supported,
)

SECRET = "Cli-Tls-Pw-4d2c"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if not tls_supported():
        pytest.skip("redis-server was built without TLS")
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_cluster(tls_files: TlsFiles) -> Iterator[LocalCluster]:
    with LocalCluster(masters=3, replicas_per_master=1, password=SECRET, tls=tls_files,
                      config=["tls-auth-clients optional"]) as c:
        for index, node in enumerate(c.masters):
            for n in range(index + 1):  # a distinct key count per master
                key = next(k for k in (f"k{index}:{i}" for i in range(100_000))
                           if c.node_for_key(k) is node and not node.command("EXISTS", k))
                node.command("SET", key, n)
        yield c


@pytest.fixture(scope="module")
def tls_sentinels(tls_files: TlsFiles) -> Iterator[LocalSentinelGroup]:
    with LocalSentinelGroup(
        replicas=1, sentinels=2, quorum=1, tls=tls_files, password=SECRET,
        sentinel_password=SECRET, config=["tls-auth-clients optional"],
        sentinel_config=["tls-auth-clients optional"],
    ) as group:
        yield group


@pytest.fixture(params=["options", "url-only"])
def tls_args(
    request: pytest.FixtureRequest, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """The TLS options of a command line (none for ``url-only``)."""
    if request.param == "url-only":
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))
        return []
    return ["--tls-ca", str(tls_files.ca_cert), "--tls-cert", str(tls_files.client_cert),
            "--tls-key", str(tls_files.client_key)]


def _url(address: tuple[str, int]) -> str:
    return f"rediss://:{SECRET}@{address[0]}:{address[1]}"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert SECRET not in out + err
    return out


def test_topology_counts_keys_on_every_node_over_tls(
    tls_cluster: LocalCluster, tls_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tls_cluster.startup_nodes[0])
    data = json.loads(_run(["topology", url, "--json", *tls_args], capsys))
    counts = {n["address"]: n["keys"] for n in data["nodes"] if n["role"] == "master"}
    expected = {f"127.0.0.1:{m.port}": int(m.command("DBSIZE")) for m in tls_cluster.masters}
    assert counts == expected  # DBSIZE reached every node (TLS + password), none shows "-"
    assert sorted(expected.values()) == [1, 2, 3]
    assert all(n["keys"] is not None for n in data["nodes"])


def test_keyslot_names_owners_over_tls(
    tls_cluster: LocalCluster, tls_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tls_cluster.startup_nodes[1])
    out = _run(["keyslot", "user:1", "user:2", "--url", url, *tls_args], capsys)
    for line in out.splitlines():
        key, _slot, owner = line.split()
        assert owner == f"127.0.0.1:{tls_cluster.node_for_key(key).port}"


def test_watch_cluster_over_tls(
    tls_cluster: LocalCluster, tls_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tls_cluster.startup_nodes[0])
    out = _run(["watch", url, "--duration", "0.5", *tls_args], capsys)
    assert "watching cluster" in out and "3 masters" in out


def test_sentinel_command_over_tls(
    tls_sentinels: LocalSentinelGroup, tls_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tls_sentinels.sentinel_addresses[0])
    data = json.loads(_run(
        ["sentinel", url, tls_sentinels.service, "--json", *tls_args], capsys
    ))
    master = f"127.0.0.1:{tls_sentinels.master_address[1]}"
    assert data["master"]["address"] == master
    # Both sentinels (the second one learned from the first) answered over TLS.
    assert [s["master"] for s in data["sentinels"]] == [master, master]


def test_watch_sentinel_over_tls(
    tls_sentinels: LocalSentinelGroup, tls_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tls_sentinels.sentinel_addresses[1])
    out = _run(["watch", url, "--sentinel", tls_sentinels.service, "--duration", "0.5",
                *tls_args], capsys)
    assert f"master 127.0.0.1:{tls_sentinels.master_address[1]}" in out


def test_insecure_skips_verification_explicitly(
    tls_sentinels: LocalSentinelGroup, tls_files: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tls_sentinels.sentinel_addresses[0])
    client = ["--tls-cert", str(tls_files.client_cert), "--tls-key", str(tls_files.client_key)]
    # Without the CA the server certificate is refused ...
    assert main(["sentinel", url, tls_sentinels.service, *client]) != 0
    err = capsys.readouterr().err
    assert "certificate" in err.lower() and SECRET not in err
    # ... and --insecure is the explicit way to skip verification.
    _run(["sentinel", url, tls_sentinels.service, "--insecure", *client], capsys)


def test_tls_options_without_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A key without a certificate, or unreadable files: one-line usage errors (status 2).
    assert main(["topology", "rediss://127.0.0.1:1", "--tls-key", "k.pem"]) == 2
    assert "--tls-key needs --tls-cert" in capsys.readouterr().err
    missing = str(tmp_path / "missing.pem")
    assert main(["sentinel", "127.0.0.1:1", "svc", "--tls-ca", missing]) == 2
    assert "cannot load TLS files" in capsys.readouterr().err
