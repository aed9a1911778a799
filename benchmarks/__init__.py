"""The performance benchmark (`make bench`): throughput, hot keys, CPU per change (default and packed topic messages,
the raw SDK, the SDK's options), topic operations, shard headroom, cold start, memory and cost, side by side.

Run ``python -m benchmarks`` (``--quick`` for a smoke run, ``--rounds N``, ``--cpu-rounds N``, ``--output PATH``); the
results go to ``benchmarks/results.md`` and a summary table to stdout.
"""
