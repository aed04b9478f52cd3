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
from .testing import LocalStandalone

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


def run_demo(topology: str = "standalone") -> int:
    """Start ``topology`` locally, run the demo against it, stop it."""
    runners: dict[str, Any] = {"standalone": (LocalStandalone, _standalone_demo)}
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if topology not in runners:
        print(f"unknown topology {topology!r}; choose from {', '.join(sorted(runners))}")
        return 2
    runner = runners[topology]
    if isinstance(runner, tuple):
        factory, body = runner
        _say(f"starting a local {topology} redis-server ...")
        with factory() as local:
            _say(f"started {local!r}")
            asyncio.run(body(local))
    else:
        runner(_say)
    _say("done; local servers stopped")
    return 0
