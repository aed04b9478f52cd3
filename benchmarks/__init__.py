"""Benchmarks of clustermgr against redis-py, coredis and aioredis-cluster.

Run ``python -m benchmarks --help`` (or ``./dev bench``).  See
``benchmarks/README.md``.  This package imports nothing beyond the standard
library at import time, so its runner also works in the separate virtualenv
used for aioredis-cluster.
"""
