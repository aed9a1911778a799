"""Cold start: fresh interpreters importing the handler module and building its clients, next to ``import momento``.

Each probe is a new ``python`` process; the wall time of the whole process (interpreter start to exit) and the
import time measured inside it are both kept, and the two probes alternate so drift hits both. A second pair runs
against a copy of the imported packages without bytecode, as the Lambda artifact is when built without a Python 3.13
(functions/Makefile): the runtime then compiles every module on every cold start, because ``/var/task`` is
read-only; a build with a Python 3.13 at hand ships the bytecode and starts like the first pair.
``python -X importtime`` gives the modules that dominate, and the probe reports whether boto3 was imported.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.throughput import median

__all__ = ["ColdStartFigures", "ImportEntry", "Probe", "ProbePair", "importtime_entries", "measure_cold_start"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_SOURCE_PATH = [REPO_ROOT / "functions", REPO_ROOT]

_MOMENTO_PROBE = """
import json, sys, time
started = time.perf_counter()
import momento  # noqa
imported = time.perf_counter() - started
print(json.dumps({"import": imported, "ready": imported, "modules": len(sys.modules)}))
"""

_HANDLER_PROBE = """
import json, sys, time
started = time.perf_counter()
import stream_processor.app
imported = time.perf_counter() - started
stream_processor.app.processor()
ready = time.perf_counter() - started
site = [m.__name__ for m in list(sys.modules.values()) if "-packages" in str(getattr(m, "__file__", "") or "")]
print(json.dumps({
    "import": imported, "ready": ready, "modules": len(sys.modules),
    "boto3": "boto3" in sys.modules, "botocore_client": "botocore.client" in sys.modules,
    "site_packages": sorted({name.partition(".")[0] for name in site}),
}))
"""


@dataclass(frozen=True)
class Probe:
    """One fresh interpreter: whole-process wall and CPU seconds (user + system), and what it measured inside."""

    wall_seconds: float
    cpu_seconds: float
    import_seconds: float
    ready_seconds: float
    details: Mapping[str, object]


@dataclass
class ProbePair:
    """Handler probes next to ``import momento`` probes, run alternately."""

    handler: list[Probe] = field(default_factory=list)
    momento: list[Probe] = field(default_factory=list)

    def wall(self, which: str) -> float:
        return median([probe.wall_seconds for probe in getattr(self, which)])

    def ready(self, which: str) -> float:
        return median([probe.ready_seconds for probe in getattr(self, which)])

    def cpu(self, which: str) -> float:
        return median([probe.cpu_seconds for probe in getattr(self, which)])

    @property
    def wall_ratio(self) -> float:
        return self.wall("handler") / self.wall("momento")

    @property
    def import_ratio(self) -> float:
        return self.ready("handler") / self.ready("momento")

    @property
    def cpu_ratio(self) -> float:
        return self.cpu("handler") / self.cpu("momento")


@dataclass(frozen=True)
class ImportEntry:
    """One line of ``python -X importtime``: self and cumulative microseconds, nesting depth and module name."""

    self_us: int
    cumulative_us: int
    depth: int
    module: str


@dataclass
class ColdStartFigures:
    """Everything the cold-start section reports."""

    compiled: ProbePair
    uncompiled: ProbePair | None
    imports: list[ImportEntry]
    boto3_imported: bool
    botocore_client_imported: bool

    def top_cumulative(self, count: int) -> list[ImportEntry]:
        return sorted(self.imports, key=lambda entry: entry.cumulative_us, reverse=True)[:count]

    def self_time_by_package(self, count: int) -> list[tuple[str, int]]:
        totals: dict[str, int] = defaultdict(int)
        for entry in self.imports:
            totals[entry.module.partition(".")[0]] += entry.self_us
        return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:count]


def measure_cold_start(
    env: Mapping[str, str],
    rounds: int,
    *,
    uncompiled_rounds: int,
    progress: Callable[[str], None] = lambda _: None,
) -> ColdStartFigures:
    """Alternate fresh-interpreter probes (``rounds`` each), then the no-bytecode pair and ``-X importtime``."""
    source_env = _with_path(env, _SOURCE_PATH)
    compiled = ProbePair()
    _probe(_HANDLER_PROBE, source_env)  # writes any missing bytecode, so the timed runs load it as a warm build would
    _probe(_MOMENTO_PROBE, source_env)
    for number in range(rounds):
        progress(f"cold start {number + 1}/{rounds}")
        compiled.handler.append(_probe(_HANDLER_PROBE, source_env))
        compiled.momento.append(_probe(_MOMENTO_PROBE, source_env))
    details = compiled.handler[-1].details
    uncompiled = None
    if uncompiled_rounds:
        uncompiled = ProbePair()
        with tempfile.TemporaryDirectory(prefix="bench-artifact-") as artifact:
            packages = [str(name) for name in details.get("site_packages", [])]  # type: ignore[union-attr]
            artifact_env = _with_path(env, [_copy_without_bytecode(Path(artifact), packages)])
            # -S: only the artifact and the standard library (which the Lambda runtime ships compiled) are importable.
            flags = ["-S", "-B"]
            for number in range(uncompiled_rounds):
                progress(f"cold start without bytecode {number + 1}/{uncompiled_rounds}")
                uncompiled.handler.append(_probe(_HANDLER_PROBE, artifact_env, flags))
                uncompiled.momento.append(_probe(_MOMENTO_PROBE, artifact_env, flags))
    return ColdStartFigures(
        compiled=compiled,
        uncompiled=uncompiled,
        imports=importtime_entries(source_env),
        boto3_imported=bool(details.get("boto3")),
        botocore_client_imported=bool(details.get("botocore_client")),
    )


def importtime_entries(env: Mapping[str, str]) -> list[ImportEntry]:
    """Every module ``import stream_processor.app`` loads, with its self and cumulative import time."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import stream_processor.app"],
        env=dict(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    entries = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        depth = (len(name) - len(name.lstrip(" "))) // 2
        entries.append(ImportEntry(int(self_us), int(cumulative_us), depth, name.strip()))
    return entries


def _probe(script: str, env: Mapping[str, str], flags: list[str] | None = None) -> Probe:
    # Probes run one at a time, so the change in the children's rusage is this child's CPU time.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *(flags or []), "-c", script],
        env=dict(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    if result.returncode != 0:
        raise RuntimeError(f"cold-start probe failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    details = json.loads(result.stdout.strip().splitlines()[-1])
    return Probe(wall, cpu, details["import"], details["ready"], details)


def _with_path(env: Mapping[str, str], path: list[Path]) -> dict[str, str]:
    probe_env = dict(env)
    probe_env["PYTHONPATH"] = os.pathsep.join(str(entry) for entry in path)
    probe_env.pop("PYTHONDONTWRITEBYTECODE", None)
    return probe_env


def _copy_without_bytecode(artifact: Path, packages: list[str]) -> Path:
    """Copy the handler package and the site-packages it imports into ``artifact``, without any bytecode."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
    shutil.copytree(REPO_ROOT / "functions" / "stream_processor", artifact / "stream_processor", ignore=ignore)
    for name in packages:
        if (site_packages / name).is_dir():
            shutil.copytree(site_packages / name, artifact / name, ignore=ignore)
        for single in site_packages.glob(f"{name}.*"):  # single-file modules and extension modules
            if single.is_file() and single.suffix in {".py", ".so", ".pyd"}:
                shutil.copy2(single, artifact / single.name)
    for metadata in site_packages.glob("*.dist-info"):  # some packages read their own version at import
        shutil.copytree(metadata, artifact / metadata.name)
    return artifact
