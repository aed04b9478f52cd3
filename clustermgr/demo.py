"""The README's demo: start a local topology, use it, break it, keep going.

Run with ``python -m clustermgr demo`` (or ``./dev demo``). It starts its own
``redis-server`` processes on 127.0.0.1 and stops them at the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .pool import create_pool
from .pubsub import Channel
from .testing import LocalCluster, LocalStandalone

__all__ = ["run_demo"]


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def _standalone_demo(server: LocalStandalone) -> None:
    pool = await create_pool(server.address, minsize=2, maxsize=4, encoding="utf-8")
    try:
        _say(f"connected: {pool!r}")
        await pool.execute("SET", "demo:greeting", "hello")
        _say(f"GET demo:greeting -> {await pool.execute('GET', 'demo:greeting')!r}")
        started = time.perf_counter()
        await asyncio.gather(*(pool.execute("INCR", "demo:counter") for _ in range(10_000)))
        elapsed = time.perf_counter() - started
        _say(f"10,000 pipelined INCRs in {elapsed * 1000:.0f} ms over {pool.size} connections")

        await pool.execute_pubsub("SUBSCRIBE", "demo:news")
        channel = pool.pubsub_channels[b"demo:news"]
        assert isinstance(channel, Channel)
        await pool.execute("PUBLISH", "demo:news", "first message")
        _say(f"subscribed; received {await channel.get(encoding='utf-8')!r}")

        killed = await pool.execute("CLIENT", "KILL", "TYPE", "pubsub")
        _say(f"CLIENT KILL TYPE pubsub: the server dropped {killed} subscriber connection(s)")
        for attempt in range(50):
            await pool.execute("PUBLISH", "demo:news", f"after the kill #{attempt}")
            try:
                message = await asyncio.wait_for(channel.get(encoding="utf-8"), 0.1)
            except asyncio.TimeoutError:
                continue
            _say(f"same Channel object, resubscribed by the pool; received {message!r}")
            break
        else:
            raise RuntimeError("the subscription did not come back")
    finally:
        pool.close()
        await pool.wait_closed()


async def _cluster_demo(cluster: LocalCluster) -> None:
    from .cluster import create_cluster_pool, key_slot

    pool = await create_cluster_pool(cluster.startup_nodes, maxsize=4, encoding="utf-8")
    try:
        _say(f"connected to the cluster through one startup node: {pool!r}")
        for key in ("user:1", "user:2", "{user:1}:cart"):
            owner = cluster.node_for_key(key)
            _say(f"key {key!r} -> slot {key_slot(key)} -> master :{owner.port}")
        await asyncio.gather(*(pool.execute("SET", f"demo:{i}", i) for i in range(3_000)))
        counts = [f":{m.port}={m.command('DBSIZE')!s}" for m in cluster.masters]
        _say(f"3,000 keys written in one gather, spread by slot: {', '.join(counts)}")
        values = await pool.execute("MGET", "demo:1", "demo:2", "demo:3")
        _say(f"MGET across three slots, split per node and merged in order: {values}")

        victim = cluster.node_for_key("demo:victim")
        replica = cluster.replicas_of(victim)[0]
        done = 0
        errors: dict[str, int] = {}
        last_error_at = 0.0
        stop = asyncio.Event()

        async def worker(n: int) -> None:
            nonlocal done, last_error_at
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    await pool.execute("SET", f"demo:victim:{{{n}}}:{i}", i)
                    await pool.execute("SET", "demo:victim", i)
                    done += 1
                except Exception as exc:  # counted and shown: the demo keeps going
                    kind = type(exc).__name__
                    if getattr(exc, "may_have_executed", False):
                        kind += " (may have been applied)"
                    errors[kind] = errors.get(kind, 0) + 1
                    last_error_at = time.monotonic()
                    await asyncio.sleep(0.05)

        workers = [asyncio.ensure_future(worker(n)) for n in range(20)]
        await asyncio.sleep(1)
        _say(f"20 tasks writing; {done} ops so far. SIGKILL master :{victim.port} "
             f"(pid {victim.pid}), which owns 'demo:victim'")
        killed_at = time.monotonic()
        cluster.kill(victim)
        before = done
        while cluster.node_for_key("demo:victim").port != replica.port:
            await asyncio.sleep(0.1)
            if time.monotonic() - killed_at > 30:
                raise RuntimeError("the replica was not promoted within 30 s")
        promoted = time.monotonic() - killed_at
        _say(f"replica :{replica.port} promoted {promoted:.1f} s after the kill")
        await asyncio.sleep(1)  # let the workers run on the new master for a while
        stop.set()
        await asyncio.gather(*workers)
        owner = await pool.execute("GET", "demo:victim")
        _say(f"writes continue on the new master; {done - before} ops since the kill, "
             f"'demo:victim' = {owner}")
        shown = ", ".join(f"{k}: {v}" for k, v in errors.items()) or "none"
        _say(f"errors seen by callers: {shown}")
    finally:
        pool.close()
        await pool.wait_closed()


def run_demo(topology: str = "standalone") -> int:
    """Start ``topology`` locally, run the demo against it, stop it."""
    runners: dict[str, Any] = {
        "standalone": (LocalStandalone, _standalone_demo),
        "cluster": (LocalCluster, _cluster_demo),
    }
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if topology not in runners:
        print(f"unknown topology {topology!r}; choose from {', '.join(sorted(runners))}")
        return 2
    factory, body = runners[topology]
    _say(f"starting a local {topology} topology of redis-server processes ...")
    with factory() as local:
        _say(f"started {local!r}")
        asyncio.run(body(local))
    _say("done; local servers stopped")
    return 0
