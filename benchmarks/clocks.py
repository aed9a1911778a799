"""The clocks a benchmark run reads: wall time, this process's CPU time, its main thread's, and the server process's.

What is billed on Lambda is the CPU time of the process doing the calls, every thread of it (the event loop's main
thread, and gRPC's own threads that poll the completion queue and run its timers). The main thread's share and the
local server's CPU (a separate process here, Momento's own machines in production) are read too, only to show what
a measurement that counts one thread, or both processes, would report instead. So is the CPU time spent in CPython's
cyclic garbage collector (timed through ``gc.callbacks``), part of the process's CPU time.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass

__all__ = ["Reading", "Usage", "read_clocks"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Reading:
    """The clocks at one instant (seconds)."""

    wall: float
    process_cpu: float
    main_thread_cpu: float
    server_cpu: float | None
    collector_cpu: float = 0.0

    def until(self, later: Reading) -> Usage:
        """What was used between this reading and a later one."""
        server = None
        if self.server_cpu is not None and later.server_cpu is not None:
            server = later.server_cpu - self.server_cpu
        return Usage(
            later.wall - self.wall,
            later.process_cpu - self.process_cpu,
            later.main_thread_cpu - self.main_thread_cpu,
            server,
            later.collector_cpu - self.collector_cpu,
        )


@dataclass(frozen=True)
class Usage:
    """Wall seconds and CPU seconds used by one measured run."""

    seconds: float
    cpu_seconds: float  # this process, every thread
    main_thread_cpu_seconds: float
    server_cpu_seconds: float | None = None  # the local server process (Linux only)
    collector_cpu_seconds: float = 0.0  # in the cyclic garbage collector, included in cpu_seconds


def read_clocks(server_pid: int | None = None) -> Reading:
    """Read every clock now; call it from the thread that runs the event loop (the main thread here)."""
    return Reading(
        time.perf_counter(), time.process_time(), time.thread_time(), _process_cpu(server_pid), _collector.total()
    )


class _CollectorClock:
    """CPU time spent in the cyclic garbage collector so far, from each collection's start and stop callbacks."""

    def __init__(self) -> None:
        self._spent = 0.0
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        elif self._started is not None:
            self._spent += time.process_time() - self._started
            self._started = None

    def total(self) -> float:
        if self not in gc.callbacks:  # from the first reading on
            gc.callbacks.append(self)
        return self._spent


_collector = _CollectorClock()


def _process_cpu(pid: int | None) -> float | None:
    """User + system CPU of another process from /proc (clock-tick resolution, every thread); None where unavailable."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS
