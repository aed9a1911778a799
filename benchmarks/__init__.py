"""The performance benchmark (`make bench`): throughput, hot keys, cold start, memory, cost and scale, side by side.

Run ``python -m benchmarks`` (``--quick`` for a smoke run, ``--rounds N``, ``--output PATH``); the results go to
``benchmarks/results.md`` and a summary table to stdout.
"""
