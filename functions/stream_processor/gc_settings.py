"""The cyclic garbage collector's setting for the function's process, applied once when the container starts.

Reference counting frees what the handler builds for a batch (parsed records, the plan, the coroutines of its
calls) as soon as the batch is done with it; none of it needs the cyclic collector. CPython still runs a young
collection whenever 700 more container objects are alive than at the last one, which a 1,000-record batch (holding
a few objects per change for its length) crosses dozens of times: about 6 us of CPU per change in packed mode, some
4% (benchmarks/results.md, "Collector threshold"). A higher young threshold makes those collections rare; cyclic
garbage, of which the handler makes little, is collected later instead, at most ``YOUNG_THRESHOLD`` objects' worth.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "collect_young_objects_less_often"]

#: Container objects allocated (net of those freed) between young collections; CPython's default is 700.
YOUNG_THRESHOLD = 50_000


def collect_young_objects_less_often() -> None:
    """Raise the young generation's threshold (the older generations' stay as they are)."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, young), middle, old)
