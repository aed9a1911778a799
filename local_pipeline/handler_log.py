"""The handler's output during a local run: its JSON logs and EMF metrics go to a file, the terminal stays readable.

On Lambda the function's stdout is its CloudWatch log stream: Powertools writes one JSON line per log entry and one
EMF document per invocation. Locally the same lines go to a log file, along with the warnings of the Momento SDK and
of the event source mapping emulator (Python logging), and the invocation summaries are read back from it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from local_pipeline.event_source_mapping import Handler
from local_pipeline.lambda_context import LambdaContext
from stream_processor.observability import BatchSummary, logger

__all__ = ["HandlerLog", "InvocationTotals"]

_SUMMARY_MESSAGE = "batch processed"  # the INFO line every invocation ends with (stream_processor.observability)
_COUNTED = tuple(field.name for field in fields(BatchSummary) if field.name != "duration_ms")


@dataclass(frozen=True)
class InvocationTotals(BatchSummary):
    """The handler's own counts (its per-invocation summaries), summed, and how many invocations they came from."""

    invocations: int = 0


class HandlerLog:
    """A log file that receives the handler's stdout and Python logging while ``capture()`` is active."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    @contextlib.contextmanager
    def capture(self, level: int = logging.INFO) -> Iterator[HandlerLog]:
        """Route Powertools' handler, the root logger and (through ``wrap``) the handler's prints into the file;
        the handler logs at ``level`` or below it, never above INFO (the invocation summaries are INFO lines)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            self._file = file
            powertools_handler = logger.registered_handler
            # Powertools binds its handler to the stdout of import time: point it at the file, and back after.
            previous_stream = getattr(powertools_handler, "stream", None)
            if isinstance(powertools_handler, logging.StreamHandler):
                powertools_handler.setStream(file)
            previous_level = logger.log_level
            logger.setLevel(min(level, logging.INFO))
            root_handler = logging.StreamHandler(file)
            root_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            # Powertools' records also propagate to the root: they are in the file already, as JSON.
            root_handler.addFilter(lambda record: record.name.split(".")[0] != logger.name)
            logging.getLogger().addHandler(root_handler)  # the SDK's and the emulator's warnings
            try:
                yield self
            finally:
                logging.getLogger().removeHandler(root_handler)
                logger.setLevel(previous_level)
                if isinstance(powertools_handler, logging.StreamHandler) and previous_stream is not None:
                    powertools_handler.setStream(previous_stream)
                self._file = None

    def wrap(self, handler: Handler) -> Handler:
        """The handler with its stdout (EMF metrics) sent to the file."""

        def invoke(event: dict[str, Any], context: LambdaContext) -> Any:
            if self._file is None:
                return handler(event, context)
            with contextlib.redirect_stdout(self._file):
                return handler(event, context)

        return invoke

    def totals(self) -> InvocationTotals:
        """Sum the invocation summaries written to the file so far."""
        counts = dict.fromkeys(_COUNTED, 0)
        invocations = 0
        for entry in self.entries():
            if entry.get("message") != _SUMMARY_MESSAGE:
                continue
            invocations += 1
            for name in _COUNTED:
                counts[name] += int(entry.get(name, 0))
        return InvocationTotals(invocations=invocations, **counts)

    def entries(self) -> list[dict[str, Any]]:
        """The Powertools JSON log entries written to the file so far, in order."""
        if self._file is not None:
            self._file.flush()
        found = []
        with self.path.open(encoding="utf-8") as file:
            for line in file:
                if not line.startswith("{"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and "level" in entry and "message" in entry:
                    found.append(entry)
        return found
