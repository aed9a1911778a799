"""A local Momento-compatible server for tests, `make run` and benchmarks (the real SDK talks to it over gRPC)."""

from .faults import (
    ERR_ITEM_SIZE,
    ERR_OPERATIONS_RATE,
    ERR_THROUGHPUT_RATE,
    FaultRule,
    fault_rate,
)
from .holds import WriteHold
from .process import ServerProcess, start_server_process
from .server import LocalMomentoServer

__all__ = [
    "ERR_ITEM_SIZE",
    "ERR_OPERATIONS_RATE",
    "ERR_THROUGHPUT_RATE",
    "FaultRule",
    "LocalMomentoServer",
    "ServerProcess",
    "WriteHold",
    "fault_rate",
    "start_server_process",
]
