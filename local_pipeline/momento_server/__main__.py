"""Command line: serve the local Momento server in this process until SIGTERM/SIGINT.

    python -m local_pipeline.momento_server [--host 127.0.0.1] [--port 0] [--cache NAME ...]
        [--fault-rate 0.05] [--seed 0] [--max-item-bytes N]

Prints one line `READY <port>` on stdout once it accepts calls (port 0 picks a free port).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from .faults import fault_rate
from .server import DEFAULT_MAX_ITEM_BYTES, LocalMomentoServer


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_pipeline.momento_server",
        description="Serve the local Momento server until SIGTERM/SIGINT; prints `READY <port>` once serving.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--cache", action="append", default=[], metavar="NAME", help="create this cache (repeatable)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fail this share of Set/Delete/Publish calls")
    parser.add_argument("--seed", type=int, default=0, help="seed for probabilistic faults")
    parser.add_argument("--max-item-bytes", type=int, default=DEFAULT_MAX_ITEM_BYTES)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server = LocalMomentoServer(
        args.host, args.port, caches=args.cache, max_item_bytes=args.max_item_bytes, seed=args.seed
    )
    server.add_faults(fault_rate(args.fault_rate))
    with server:
        print(f"READY {server.port}", flush=True)
        while not stopping.wait(1.0):  # a timed wait keeps the main thread responsive to signals
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
