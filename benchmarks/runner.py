"""Run one :class:`~benchmarks.jobs.Job` and print its result as one JSON line.

Used as ``python -m benchmarks.runner < job.json`` by the harness, in the
project's virtualenv or in the private one of aioredis-cluster, so that each
measurement starts in a fresh process (no memory or GC state carried over
from another client).  Only the standard library and the client under test
are imported.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from typing import Any

from .adapters import make_adapter
from .jobs import Job
from .scenarios import SCENARIOS

__all__ = ["main", "run_job"]

FAILURE_CHARS = 300
"""How much of a failure's message goes into the result (and the report)."""


async def run_job(job: Job) -> dict[str, Any]:
    """Connect the job's client, run its scenario, close; return the result dict."""
    if job.scenario not in SCENARIOS:
        from .sweep import SWEEP_JOBS  # only the sweep needs it

        return await SWEEP_JOBS[job.scenario](job)
    scenario = SCENARIOS[job.scenario]
    adapter = make_adapter(job.client, job.maxsize, job.client_options)
    started = time.perf_counter()
    await adapter.connect(job.target)
    connect_s = time.perf_counter() - started
    try:
        result = await scenario.run(adapter, job.params, job.duration)
    finally:
        await adapter.close()
    result["connect_s"] = round(connect_s, 3)
    result["client_info"] = adapter.describe()
    return result


def main() -> int:
    """Read a job from stdin (or argv[1]), run it, print one JSON object."""
    text = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    job = Job.from_json(text)
    try:
        result = asyncio.run(run_job(job))
    except Exception as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        if len(message) > FAILURE_CHARS:  # the traceback on stderr has it whole
            message = message[:FAILURE_CHARS] + " ..."
        print(json.dumps({"failed": message}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
