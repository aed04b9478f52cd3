"""Throwaway TLS material and config for local test servers (``openssl`` CLI).

:func:`make_certificates` writes an RFC 5280-conformant CA, a server
certificate for 127.0.0.1 and a client certificate into a directory;
:func:`tls_config` turns them into redis.conf lines for an extra ``tls-port``
(the plain port stays open for the launcher's admin commands);
:func:`tls_supported` tells whether the server binary was built with TLS.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ServerStartError
from .process import LocalServer, find_free_port

__all__ = [
    "TlsFiles", "client_context", "make_certificates", "tls_config", "tls_only_config",
    "tls_supported",
]


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the generated PEM files."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


_CA_EXTENSIONS = (
    "basicConstraints = critical,CA:TRUE",
    "keyUsage = critical,keyCertSign,cRLSign",
    "subjectKeyIdentifier = hash",
    "authorityKeyIdentifier = keyid:always",
)
_LEAF_EXTENSIONS = (
    "basicConstraints = critical,CA:FALSE",
    "keyUsage = critical,digitalSignature,keyEncipherment",
    "subjectKeyIdentifier = hash",
    "authorityKeyIdentifier = keyid:always",
    "subjectAltName = IP:127.0.0.1,DNS:localhost",
)
_LEAVES = (("server", "serverAuth"), ("client", "clientAuth"))


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("the openssl command is needed to generate test certificates")
    subprocess.run(
        [binary, *args], cwd=str(cwd), check=True, timeout=60,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _request_config(common_name: str, extensions: tuple[str, ...] = ()) -> str:
    """A self-contained ``openssl req`` config (the system openssl.cnf is not read)."""
    lines = [
        "[req]", "prompt = no", "distinguished_name = dn", "x509_extensions = ext",
        "[dn]", f"CN = {common_name}", "[ext]", *extensions,
    ]
    return "\n".join(lines) + "\n"


def make_certificates(directory: str | os.PathLike[str]) -> TlsFiles:
    """Generate a CA, a server and a client certificate, valid for two days, into
    ``directory``.

    They conform to RFC 5280 as Python 3.13's default ``VERIFY_X509_STRICT``
    requires: critical ``basicConstraints`` and ``keyUsage`` (``keyCertSign``,
    ``cRLSign`` on the CA; ``digitalSignature``, ``keyEncipherment`` on the
    leaves), subject and authority key identifiers, ``extendedKeyUsage``
    (``serverAuth`` / ``clientAuth``) and SAN ``IP:127.0.0.1``, ``DNS:localhost``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.cnf").write_text(_request_config("clustermgr test CA", _CA_EXTENSIONS))
    _openssl(
        "req", "-x509", "-config", "ca.cnf", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.crt", cwd=out,
    )
    for name, usage in _LEAVES:
        (out / f"{name}.cnf").write_text(_request_config(f"clustermgr test {name}"))
        (out / f"{name}.ext").write_text(
            "\n".join([*_LEAF_EXTENSIONS, f"extendedKeyUsage = {usage}"]) + "\n"
        )
        _openssl(
            "req", "-new", "-config", f"{name}.cnf", "-newkey", "rsa:2048", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=out,
        )
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
            "-extfile", f"{name}.ext", cwd=out,
        )
    return TlsFiles(
        ca_cert=out / "ca.crt",
        server_cert=out / "server.crt",
        server_key=out / "server.key",
        client_cert=out / "client.crt",
        client_key=out / "client.key",
    )


def tls_config(files: TlsFiles, tls_port: int, *, auth_clients: bool = True) -> list[str]:
    """redis.conf lines for a ``tls-port``; ``auth_clients`` requires client certs."""
    return [f"tls-port {tls_port}", *_certificate_lines(files, auth_clients)]


def tls_only_config(files: TlsFiles, *, auth_clients: bool = True) -> list[str]:
    """redis.conf lines for a :class:`LocalServer` started with ``tls=``: the
    certificates, the client certificate for its own outgoing links, and TLS
    for replication (and, on sentinels, links to masters and other sentinels)."""
    return [
        *_certificate_lines(files, auth_clients),
        f'tls-client-cert-file "{files.client_cert}"',
        f'tls-client-key-file "{files.client_key}"',
        "tls-replication yes",
    ]


def _certificate_lines(files: TlsFiles, auth_clients: bool) -> list[str]:
    return [
        f'tls-cert-file "{files.server_cert}"',
        f'tls-key-file "{files.server_key}"',
        f'tls-ca-cert-file "{files.ca_cert}"',
        f"tls-auth-clients {'yes' if auth_clients else 'no'}",
    ]


def client_context(files: TlsFiles, *, client_cert: bool = True) -> ssl.SSLContext:
    """A verifying client context trusting the test CA (with the client cert)."""
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    if client_cert:
        context.load_cert_chain(str(files.client_cert), str(files.client_key))
    return context


def tls_supported(binary: str | None = None) -> bool:
    """True if the server binary starts with a ``tls-port`` (built with TLS support)."""
    with tempfile.TemporaryDirectory(prefix="clustermgr-tls-probe-") as tmp:
        try:
            files = make_certificates(Path(tmp) / "certs")
        except (RuntimeError, subprocess.SubprocessError, OSError):
            return False
        server = LocalServer(
            config=tls_config(files, find_free_port(), auth_clients=False), binary=binary,
            directory=Path(tmp) / "server", name="tls-probe", startup_timeout=10,
        )
        try:
            server.start()
        except ServerStartError:
            return False
        finally:
            server.cleanup()
        return True
