"""The subscription state machine: duplicates, reconnects, close, str keys, typing.

Every test uses channel names of its own: the session's server is shared.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from clustermgr import Channel, Receiver, create_connection, create_pool, errors
from clustermgr.subscriptions import PubSubLink


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _numsub(conn: Any, *names: str) -> dict[bytes, int]:
    reply = await conn.execute("PUBSUB", "NUMSUB", *names)
    return {reply[i]: reply[i + 1] for i in range(0, len(reply), 2)}


async def _numpat(conn: Any) -> int:
    return int(await conn.execute("PUBSUB", "NUMPAT"))


# -- duplicates: the server confirms once per argument ----------------------


@pytest.mark.parametrize("how", ["twice", "mixed"])
async def test_connection_subscribe_duplicate_names(redis_standalone: Any, how: str) -> None:
    a, b = _name("dup-a"), _name("dup-b")
    args = [a, a] if how == "twice" else [a, b, a]
    sub = await create_connection(redis_standalone.address)
    pub = await create_connection(redis_standalone.address)
    try:
        replies = await sub.execute_pubsub("SUBSCRIBE", *args)
        assert len(replies) == len(args)  # one confirmation per argument
        assert set(sub.pubsub_channels) == {n.encode() for n in set(args)}
        # The next command reply on the connection is not misread.
        assert await sub.execute("PING") == b"PONG"
        assert await pub.execute("PUBLISH", a, "m1") == 1
        assert await asyncio.wait_for(sub.pubsub_channels[a.encode()].get(), 2) == b"m1"
        await sub.execute_pubsub("UNSUBSCRIBE", *args)
        assert not sub.in_pubsub
        assert (await _numsub(pub, a))[a.encode()] == 0
    finally:
        sub.close()
        pub.close()
        await sub.wait_closed()
        await pub.wait_closed()


async def test_connection_psubscribe_duplicate_patterns(redis_standalone: Any) -> None:
    p = _name("duppat") + "*"
    sub = await create_connection(redis_standalone.address)
    pub = await create_connection(redis_standalone.address)
    try:
        replies = await sub.execute_pubsub("PSUBSCRIBE", p, p)
        assert len(replies) == 2
        assert list(sub.pubsub_patterns) == [p.encode()]
        assert await sub.execute("PING") == b"PONG"
        target = p[:-1] + "x"
        assert await pub.execute("PUBLISH", target, "m") == 1
        assert await asyncio.wait_for(sub.pubsub_patterns[p.encode()].get(), 2) == (
            target.encode(), b"m")
        await sub.execute_pubsub("PUNSUBSCRIBE", p, p)
        assert not sub.in_pubsub
    finally:
        sub.close()
        pub.close()
        await sub.wait_closed()
        await pub.wait_closed()


@pytest.mark.parametrize("how", ["twice", "mixed"])
async def test_pool_subscribe_duplicate_names(redis_standalone: Any, how: str) -> None:
    a, b = _name("pdup-a"), _name("pdup-b")
    args = [a, a] if how == "twice" else [a, b, a]
    pool = await create_pool(redis_standalone.address)
    try:
        replies = await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", *args), 5)
        assert len(replies) == len(args)
        await asyncio.wait_for(pool.execute_pubsub("PSUBSCRIBE", a + "*", a + "*"), 5)
        channel = pool.pubsub_channels[a.encode()]
        assert await pool.execute("PUBLISH", a, "m") == 2  # the channel and the pattern
        assert await asyncio.wait_for(channel.get(), 2) == b"m"
        assert (await _numsub(pool, a))[a.encode()] == 1
        await asyncio.wait_for(pool.execute_pubsub("UNSUBSCRIBE", a, a), 5)
        assert not channel.is_active
        assert (await _numsub(pool, a))[a.encode()] == 0
    finally:
        pool.close()
        await pool.wait_closed()


# -- aioredis compatibility: PING, channel objects, kinds, str keys ----------


async def test_ping_on_subscribed_connection_returns_pong(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    try:
        await conn.execute_pubsub("SUBSCRIBE", _name("ping"))
        assert await conn.execute("PING") == b"PONG"
        assert await conn.execute("PING", "hello") == b"hello"
    finally:
        conn.close()
        await conn.wait_closed()
    conn = await create_connection(redis_standalone.address, encoding="utf-8")
    try:
        await conn.execute_pubsub("SUBSCRIBE", _name("ping"))
        assert await conn.execute("PING") == "PONG"
    finally:
        conn.close()
        await conn.wait_closed()


async def test_str_keys_find_channels_and_patterns(redis_standalone: Any) -> None:
    name, pattern = _name("strkey"), _name("strpat") + "*"
    conn = await create_connection(redis_standalone.address)
    pool = await create_pool(redis_standalone.address)
    try:
        for owner in (conn, pool):
            await asyncio.wait_for(owner.execute_pubsub("SUBSCRIBE", name), 5)
            await asyncio.wait_for(owner.execute_pubsub("PSUBSCRIBE", pattern), 5)
            channels, patterns = owner.pubsub_channels, owner.pubsub_patterns
            assert channels[name] is channels[name.encode()]
            assert patterns[pattern] is patterns[pattern.encode()]
            assert name in channels and pattern in patterns
            assert channels.get(name) is channels[name.encode()]
            assert "nope" not in channels and channels.get("nope") is None
            assert list(channels) == [name.encode()]
            with pytest.raises(KeyError):
                channels["nope"]
    finally:
        conn.close()
        pool.close()
        await conn.wait_closed()
        await pool.wait_closed()


async def test_channel_kind_must_match_command(redis_standalone: Any) -> None:
    conn = await create_connection(redis_standalone.address)
    pool = await create_pool(redis_standalone.address)
    try:
        for owner in (conn, pool):
            with pytest.raises(ValueError, match="pattern"):
                owner.execute_pubsub("SUBSCRIBE", Channel("x*", is_pattern=True))
            with pytest.raises(ValueError, match="pattern"):
                owner.execute_pubsub("PSUBSCRIBE", Channel("x", is_pattern=False))
            with pytest.raises(ValueError, match="pattern"):
                owner.execute_pubsub("SSUBSCRIBE", Receiver().pattern("x*"))
            with pytest.raises(ValueError, match="pattern"):
                owner.execute_pubsub("PUNSUBSCRIBE", Channel("x", is_pattern=False))
            assert not owner.in_pubsub
        assert await conn.execute("PING") == b"PONG"  # nothing was sent
    finally:
        conn.close()
        pool.close()
        await conn.wait_closed()
        await pool.wait_closed()


async def test_aioredis_channel_objects_accepted(redis_standalone: Any) -> None:
    aioredis = pytest.importorskip("aioredis")
    name = _name("aio")
    receiver = aioredis.pubsub.Receiver()
    plain = aioredis.Channel(name + "-plain", is_pattern=False)
    conn = await create_connection(redis_standalone.address)
    pool = await create_pool(redis_standalone.address)
    try:
        await conn.execute_pubsub("SUBSCRIBE", plain)
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", receiver.channel(name)), 5)
        await asyncio.wait_for(pool.execute_pubsub("PSUBSCRIBE", receiver.pattern(name + "*")), 5)
        assert await pool.execute("PUBLISH", name, "hi") == 2
        assert await pool.execute("PUBLISH", name + "-plain", "p") == 2
        assert await asyncio.wait_for(plain.get(), 2) == b"p"
        got = {await asyncio.wait_for(receiver.get(), 2) for _ in range(3)}
        assert {msg for _, msg in got} == {b"hi", (name.encode(), b"hi"),
                                           ((name + "-plain").encode(), b"p")}
    finally:
        conn.close()
        pool.close()
        await conn.wait_closed()
        await pool.wait_closed()


# -- several readers of one Channel ------------------------------------------


async def test_several_readers_all_woken_by_messages_and_close() -> None:
    channel = Channel("many")
    readers = [asyncio.ensure_future(channel.get()) for _ in range(3)]
    await asyncio.sleep(0)
    channel.put_nowait(b"one")
    channel.put_nowait(b"two")
    done, pending = await asyncio.wait(readers, timeout=1)
    assert sorted(r.result() for r in done) == [b"one", b"two"] and len(pending) == 1
    waiters = [asyncio.ensure_future(channel.wait_message()) for _ in range(2)]
    await asyncio.sleep(0)
    more = [asyncio.ensure_future(channel.get()) for _ in range(2)]
    await asyncio.sleep(0)
    channel.close()
    ended = await asyncio.wait_for(asyncio.gather(pending.pop(), *more), 1)
    assert ended == [None, None, None]  # every waiting reader gets the end (aioredis: None)
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [False, False]
    with pytest.raises(errors.ChannelClosedError):
        await channel.get()


async def test_cancelled_reader_does_not_lose_a_wakeup() -> None:
    channel = Channel("cancel")
    first = asyncio.ensure_future(channel.get())
    second = asyncio.ensure_future(channel.get())
    await asyncio.sleep(0)
    channel.put_nowait(b"m")
    first.cancel()
    assert await asyncio.wait_for(second, 1) == b"m"


# -- the pool's state machine: reconnects, close, refusals -------------------

_KINDS = [
    ("SUBSCRIBE", "UNSUBSCRIBE", "pubsub_channels"),
    ("PSUBSCRIBE", "PUNSUBSCRIBE", "pubsub_patterns"),
    ("SSUBSCRIBE", "SUNSUBSCRIBE", "pubsub_shard_channels"),
]


async def _server_count(conn: Any, subscribe: str, name: str) -> int:
    """How many subscribers the server has for ``name`` of that kind (from the server)."""
    if subscribe == "PSUBSCRIBE":  # no per-pattern count: publish to a matching channel
        return int(await conn.execute("PUBLISH", name.rstrip("*") + "-probe", "probe"))
    sub = "SHARDNUMSUB" if subscribe == "SSUBSCRIBE" else "NUMSUB"
    reply = await conn.execute("PUBSUB", sub, name)
    return int(reply[1])


def _arg(subscribe: str, name: str) -> str:
    return name + "*" if subscribe == "PSUBSCRIBE" else name


async def _deliver(pool: Any, subscribe: str, name: str, channel: Any) -> None:
    """Publish to ``name`` until ``channel`` gets it (it may be resubscribing)."""
    publish = "SPUBLISH" if subscribe == "SSUBSCRIBE" else "PUBLISH"
    target = name + "-x" if subscribe == "PSUBSCRIBE" else name
    for _ in range(100):
        await pool.execute(publish, target, "ping")
        try:
            await asyncio.wait_for(channel.get(), 0.1)
            return
        except asyncio.TimeoutError:
            continue
    raise AssertionError(f"nothing arrived on {channel!r}")


async def _readers_end(*readers: asyncio.Future[Any]) -> None:
    """Every reader waiting when its channel ends gets None (aioredis 1.x) within a second."""
    done, pending = await asyncio.wait(readers, timeout=1)
    for task in pending:
        task.cancel()
    assert not pending, f"{len(pending)} readers still waiting"
    for task in done:
        assert task.exception() is None and task.result() is None, task


async def _pubsub_client_id(pool: Any, name: str) -> int:
    for line in (await pool.execute("CLIENT", "LIST", "TYPE", "pubsub")).decode().splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("name") == name:
            return int(fields["id"])
    raise AssertionError(f"no pub/sub client named {name}")


@pytest.mark.parametrize(("subscribe", "unsubscribe", "view"), _KINDS)
async def test_pool_unsubscribe_while_server_down(
    local_standalone_factory: Any, subscribe: str, unsubscribe: str, view: str
) -> None:
    server = local_standalone_factory()
    pool = await create_pool(server.address)
    gone_name, keep_name = _name("gone"), _name("keep")
    gone, keep = _arg(subscribe, gone_name), _arg(subscribe, keep_name)
    try:
        await asyncio.wait_for(pool.execute_pubsub(subscribe, gone, keep), 5)
        channel = getattr(pool, view)[gone.encode()]
        readers = [asyncio.ensure_future(channel.get()) for _ in range(2)]
        server.kill()
        await asyncio.sleep(0.2)
        await asyncio.wait_for(pool.execute_pubsub(unsubscribe, gone), 2)
        assert gone.encode() not in getattr(pool, view) and not channel.is_active
        await _readers_end(*readers)
        server.restart()
        await _deliver(pool, subscribe, keep_name, getattr(pool, view)[keep.encode()])
        assert await _server_count(pool, subscribe, gone) == 0
        assert await _server_count(pool, subscribe, keep) == 1
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.mark.parametrize(("subscribe", "unsubscribe", "view"), _KINDS)
async def test_pool_unsubscribe_right_after_client_kill(
    redis_standalone: Any, subscribe: str, unsubscribe: str, view: str
) -> None:
    client = _name("client")
    pool = await create_pool(redis_standalone.address, name=client)
    gone_name, keep_name = _name("gone"), _name("keep")
    gone, keep = _arg(subscribe, gone_name), _arg(subscribe, keep_name)
    try:
        await asyncio.wait_for(pool.execute_pubsub(subscribe, gone, keep), 5)
        channel = getattr(pool, view)[gone.encode()]
        readers = [asyncio.ensure_future(channel.get()) for _ in range(2)]
        await pool.execute("CLIENT", "KILL", "ID", await _pubsub_client_id(pool, client))
        await asyncio.wait_for(pool.execute_pubsub(unsubscribe, gone), 2)
        await _readers_end(*readers)
        await _deliver(pool, subscribe, keep_name, getattr(pool, view)[keep.encode()])
        await asyncio.sleep(0.1)  # an UNSUBSCRIBE of a restored name would be in by now
        assert await _server_count(pool, subscribe, gone) == 0
        assert await _server_count(pool, subscribe, keep) == 1
        assert list(getattr(pool, view)) == [keep.encode()]
    finally:
        pool.close()
        await pool.wait_closed()


async def test_pool_close_while_reconnecting(local_standalone_factory: Any) -> None:
    server = local_standalone_factory()
    pool = await create_pool(server.address)
    try:
        await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", "a"), 5)
        await asyncio.wait_for(pool.execute_pubsub("PSUBSCRIBE", "p*"), 5)
        channel, pattern = pool.pubsub_channels[b"a"], pool.pubsub_patterns[b"p*"]
        readers = [asyncio.ensure_future(c.get()) for c in (channel, channel, pattern)]
        server.kill()
        await asyncio.sleep(0.2)
        pending = [
            asyncio.ensure_future(pool.execute_pubsub("SUBSCRIBE", "b")),
            asyncio.ensure_future(pool.execute_pubsub("PSUBSCRIBE", "q*")),
        ]
        await asyncio.sleep(0.05)
        assert not any(p.done() for p in pending)
    finally:
        pool.close()
        await asyncio.wait_for(pool.wait_closed(), 2)
    for future in pending:
        with pytest.raises(errors.PoolClosedError):
            await asyncio.wait_for(future, 1)
    await _readers_end(*readers)
    assert not pool.in_pubsub


async def test_pool_subscribe_refused_fails_at_once(redis_standalone: Any) -> None:
    user = _name("nochan")
    admin = await create_connection(redis_standalone.address)
    await admin.execute("ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "resetchannels")
    pool = await create_pool(redis_standalone.address, username=user, password="pw")
    try:
        for _ in range(2):  # before and after the pub/sub connection exists
            with pytest.raises(errors.NoPermissionError):
                await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", "forbidden"), 2)
            assert not pool.in_pubsub and "forbidden" not in pool.pubsub_channels
        await asyncio.sleep(0.2)  # a retry loop would open connections meanwhile
        clients = [line for line in (await admin.execute("CLIENT", "LIST")).split(b"\n")
                   if f" user={user} ".encode() in line]
        assert len(clients) <= 2, clients  # the pool's connection and its pub/sub one
        late = asyncio.ensure_future(pool.execute_pubsub("PSUBSCRIBE", "forbidden*"))
        await asyncio.sleep(0)
    finally:
        pool.close()
        await asyncio.wait_for(pool.wait_closed(), 2)
        await admin.execute("ACL", "DELUSER", user)
        admin.close()
        await admin.wait_closed()
    with pytest.raises((errors.NoPermissionError, errors.PoolClosedError)):
        await asyncio.wait_for(late, 1)


async def test_pool_subscribe_without_auth_fails_at_once(local_standalone_factory: Any) -> None:
    server = local_standalone_factory(password="secret")
    for password in (None, "wrong"):
        pool = await create_pool(server.address, password=password, minsize=0)
        try:
            with pytest.raises(errors.AuthError):
                await asyncio.wait_for(pool.execute_pubsub("SUBSCRIBE", "x"), 2)
            assert not pool.in_pubsub
        finally:
            pool.close()
            await asyncio.wait_for(pool.wait_closed(), 2)


# -- the link alone: its three states -----------------------------------------


async def test_link_states_follow_the_server(redis_standalone: Any) -> None:
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        return task

    link = PubSubLink(
        connect=lambda: create_connection(redis_standalone.address), spawn=spawn,
        describe="test link",
    )
    name = _name("state")
    try:
        pending = link.execute(b"SUBSCRIBE", (name,))
        assert link.state("channels", name) == "subscribing" and link.pending == 1
        await asyncio.wait_for(pending, 5)
        assert link.state("channels", name) == "subscribed"
        pending = link.execute(b"UNSUBSCRIBE", (name,))
        assert link.state("channels", name) == "unsubscribing"
        await asyncio.wait_for(pending, 5)
        assert link.state("channels", name) is None
        assert link.connection is not None and not link.connection.in_pubsub
    finally:
        link.close()
        await asyncio.wait_for(link.wait_closed(), 2)
    await asyncio.gather(*tasks)
    with pytest.raises(errors.PoolClosedError):
        link.execute(b"SUBSCRIBE", (name,))


# -- the first SUBSCRIBE on an idle pool connection (as aioredis 1.x) --------


async def test_pool_first_subscribe_is_sent_before_a_later_publish(redis_standalone: Any) -> None:
    """The first SUBSCRIBE takes an idle connection of the pool and is written at once,
    so a PUBLISH issued after it on another connection reaches a subscriber."""
    name = _name("first")
    sub = await create_pool(redis_standalone.address, minsize=1)
    pub = await create_connection(redis_standalone.address)
    try:
        size = sub.size
        subscribed = sub.execute_pubsub("SUBSCRIBE", name)
        await asyncio.sleep(0)
        assert await asyncio.wait_for(pub.execute("PUBLISH", name, "m"), 5) == 1
        assert await asyncio.wait_for(subscribed, 5) == [[b"subscribe", name.encode(), 1]]
        assert await asyncio.wait_for(sub.pubsub_channels[name].get(), 5) == b"m"
        assert sub.size == size - 1  # handed over to pub/sub, as aioredis' pool did
        assert await asyncio.wait_for(sub.execute("PING"), 5) == b"PONG"  # a new one
        # The pub/sub connection is the pool's own from now on: it comes back after a kill.
        assert await sub.execute("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        await _deliver(sub, "SUBSCRIBE", name, sub.pubsub_channels[name])
    finally:
        sub.close()
        pub.close()
        await sub.wait_closed()
        await pub.wait_closed()


async def test_pool_subscribe_leaves_busy_connections_alone(redis_standalone: Any) -> None:
    """A connection with a reply pending is not taken: pub/sub opens one of its own."""
    name = _name("busy")
    sub = await create_pool(redis_standalone.address, minsize=1, maxsize=1)
    try:
        conn = sub.get_connection()
        assert conn is not None
        ping = sub.execute("PING")  # on ``conn``, reply pending
        subscribed = sub.execute_pubsub("SUBSCRIBE", name)
        assert await asyncio.wait_for(ping, 5) == b"PONG"
        assert await asyncio.wait_for(subscribed, 5) == [[b"subscribe", name.encode(), 1]]
        assert not conn.in_pubsub and sub.get_connection() is conn and sub.size == 1
    finally:
        sub.close()
        await sub.wait_closed()
