"""Credentials and options in cluster startup URLs are used for every node
connection (as ``create_pool`` uses them), against a real cluster with
``requirepass`` and an ACL user. The servers' ``CLIENT LIST`` shows which user
and client name each node connection has.

A URL and an explicit argument that disagree (or two startup URLs that do)
are refused: one set of credentials applies to every node.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clustermgr.address import InvalidAddressError
from clustermgr.cluster import create_cluster_pool
from clustermgr.testing import LocalCluster, LocalServer

SECRET = "Cl-Default-Pw-51a2"
APP_PW = "Cl-App-Pw-9e77"


@pytest.fixture(scope="module")
def auth_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        masters=3, replicas_per_master=0, password=SECRET,
        config=[f"user app on >{APP_PW} ~* &* +@all"],
    ) as cluster:
        yield cluster


def _clients(node: LocalServer) -> list[dict[str, str]]:
    """``CLIENT LIST`` of ``node`` as fields, without the connection asking."""
    clients = []
    for line in str(node.command("CLIENT", "LIST")).splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("cmd") != "client|list":
            clients.append(fields)
    return clients


async def _write_everywhere(url: str, **kwargs: object) -> None:
    pool = await create_cluster_pool([url], **kwargs)  # type: ignore[arg-type]
    try:
        for i in range(60):  # keys over every master
            assert await pool.execute("SET", f"cred:{i}", i) == b"OK"
            assert await pool.execute("GET", f"cred:{i}") == str(i).encode()
        assert len(pool.node_pools) == 3
    finally:
        pool.close()
        await pool.wait_closed()


async def test_acl_user_and_name_from_the_url_reach_every_node(
    auth_cluster: LocalCluster,
) -> None:
    host, port = auth_cluster.startup_nodes[0]
    pool = await create_cluster_pool([f"redis://app:{APP_PW}@{host}:{port}?name=web-7"])
    try:
        for i in range(60):
            assert await pool.execute("SET", f"acl:{i}", i) == b"OK"
        for node in auth_cluster.masters:
            ours = [c for c in _clients(node) if c.get("name") == "web-7"]
            assert ours, f"no connection of the pool on {node.port}"
            assert {c["user"] for c in ours} == {"app"}
    finally:
        pool.close()
        await pool.wait_closed()


async def test_requirepass_from_the_url(auth_cluster: LocalCluster) -> None:
    host, port = auth_cluster.startup_nodes[0]
    await _write_everywhere(f"redis://:{SECRET}@{host}:{port}")
    await _write_everywhere(f"redis://:{SECRET}@{host}:{port}/0")  # db 0 is the cluster's db


async def test_query_password_and_an_agreeing_argument(
    auth_cluster: LocalCluster,
) -> None:
    host, port = auth_cluster.startup_nodes[0]
    await _write_everywhere(f"redis://{host}:{port}?username=app&password={APP_PW}")
    await _write_everywhere(f"redis://app:{APP_PW}@{host}:{port}", password=APP_PW)


@pytest.mark.parametrize(
    ("urls", "kwargs", "option"),
    [
        (["redis://app:{pw}@{host}:{port}"], {"password": "other"}, "password"),
        (["redis://app:{pw}@{host}:{port}"], {"username": "bob"}, "username"),
        (["redis://app:{pw}@{host}:{port}", "redis://app:other@{host}:{port}"], {}, "password"),
        (["redis://{host}:{port}?encoding=utf-8"], {"encoding": "latin-1"}, "encoding"),
    ],
)
async def test_conflicting_credentials_are_refused(
    auth_cluster: LocalCluster, urls: list[str], kwargs: dict[str, str], option: str
) -> None:
    host, port = auth_cluster.startup_nodes[0]
    given = [u.format(pw=APP_PW, host=host, port=port) for u in urls]
    with pytest.raises(InvalidAddressError) as info:
        await create_cluster_pool(given, **kwargs)  # type: ignore[arg-type]
    assert info.value.option == option
    assert APP_PW not in str(info.value) and "other" not in str(info.value)
