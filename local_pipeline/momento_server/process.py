"""Run the local Momento server in a separate process (so benchmarks do not share a GIL with it)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from momento import CredentialProvider

# The directory that holds the `local_pipeline` package, so the child imports this same code.
_IMPORT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    """A running `python -m local_pipeline.momento_server` child; stop it with `stop()` or a `with` block."""

    process: subprocess.Popen[str]
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def credential_provider(self) -> CredentialProvider:
        return CredentialProvider.for_momento_local(self.host, self.port)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def start_server_process(
    caches: Iterable[str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    fault_rate: float = 0.0,
    seed: int = 0,
    startup_timeout: float = 20.0,
) -> ServerProcess:
    """Start the server in a child process and wait for its `READY <port>` line."""
    command = [sys.executable, "-m", "local_pipeline.momento_server", "--host", host, "--port", str(port)]
    for cache in caches:
        command += ["--cache", cache]
    if fault_rate:
        command += ["--fault-rate", str(fault_rate), "--seed", str(seed)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_IMPORT_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, cwd=_IMPORT_ROOT, env=env
    )
    try:
        ready_port = _read_ready_port(process, startup_timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return ServerProcess(process, host, ready_port)


def _read_ready_port(process: subprocess.Popen[str], timeout: float) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if not selector.select(remaining):
                continue
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"the Momento server process exited early (code {process.wait()})")
            if line.startswith("READY "):
                return int(line.split()[1])
    raise TimeoutError(f"the Momento server process did not report READY within {timeout} s")
