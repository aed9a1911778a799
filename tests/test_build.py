"""`sam build` without Docker or Python 3.13: functions/Makefile builds arm64 / cp313 artifacts with pip alone.

The slow test runs the real `sam build` (samconfig.toml's cached and parallel settings, a temporary build and cache
directory) and checks each function's artifact: the handler package, grpc's aarch64 cp313 binary, nothing compiled
for the build host, no tests; it reports the artifact's size. The fast tests dry-run the Makefile's targets, and run
its recipe without the dependency download to see what it says about bytecode.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from samcli.lib.utils.hash import dir_checksum
from samcli.yamlhelper import yaml_parse

REPO = Path(__file__).resolve().parents[1]
SAM = Path(sys.executable).parent / "sam"
FUNCTIONS = ("StreamProcessorFunction", "RedriveFunction", "BackfillFunction")
GRPC_BINARY = "grpc/_cython/cygrpc.cpython-313-aarch64-linux-gnu.so"
ELF_MACHINE_AARCH64 = 183
# Lambda's limits for a .zip deployment package: unzipped, and zipped for a direct upload.
LAMBDA_UNZIPPED_LIMIT_MB = 250
LAMBDA_ZIPPED_UPLOAD_LIMIT_MB = 50


def find_python313() -> str | None:
    """A Python 3.13 interpreter if this machine has one (on PATH, or a pyenv version), for Lambda-target bytecode."""
    probe = "import sys; print(sys.executable if sys.version_info[:2] == (3, 13) else '')"
    candidates = [{}]
    if shutil.which("pyenv"):
        versions = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, check=False).stdout
        candidates += [{"PYENV_VERSION": v} for v in versions.split() if v.startswith("3.13")]
    for extra in candidates:
        try:
            found = subprocess.run(
                ["python3.13", "-c", probe], capture_output=True, text=True, env=os.environ | extra, check=False
            ).stdout.strip()
        except FileNotFoundError:
            return None
        if found:
            return found
    return None


PYTHON313 = find_python313()


def build_environment() -> dict[str, str]:
    """No credentials, telemetry off, a region; pip runs under this interpreter (any Python 3 with pip will do)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", "PYTHON": sys.executable}
    return env | {"PYTHON313": PYTHON313 or ""}


def test_every_function_of_the_template_has_a_makefile_target(tmp_path: Path) -> None:
    template = yaml_parse((REPO / "template.yaml").read_text())
    functions = {
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        and resource.get("Metadata", {}).get("BuildMethod") == "makefile"
    }
    assert functions == set(FUNCTIONS)
    for function in functions:
        dry_run = subprocess.run(
            ["make", "--dry-run", f"build-{function}", f"ARTIFACTS_DIR={tmp_path}"],
            cwd=REPO / "functions",
            capture_output=True,
            text=True,
            check=False,
        )
        assert dry_run.returncode == 0, dry_run.stderr
        commands = dry_run.stdout
        assert "pip install" in commands and "--requirement requirements.txt" in commands
        for flag in ("--platform manylinux2014_aarch64", "--implementation cp", "--python-version 3.13"):
            assert flag in commands
        assert "--only-binary=:all:" in commands and "--no-compile" in commands
        assert f'--target "{tmp_path}"' in commands


def test_makefile_refuses_to_run_outside_sam_build() -> None:
    result = subprocess.run(
        ["make", "--dry-run", "build-StreamProcessorFunction"],
        cwd=REPO / "functions",
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "ARTIFACTS_DIR"},
        check=False,
    )
    assert result.returncode != 0
    assert "ARTIFACTS_DIR is not set" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# Bytecode: shipped when a Python 3.13 is at hand, and a warning in the build output when not
# ---------------------------------------------------------------------------------------------------------------

NO_BYTECODE = "ships no bytecode"
NO_BYTECODE_FIX = "PYTHON313=/path/to/python3.13 sam build"


def run_recipe(artifacts: Path, python313: str) -> subprocess.CompletedProcess[str]:
    """The Makefile's real recipe for one function, minus the dependency download (PIP_INSTALL=true)."""
    target = "build-StreamProcessorFunction"
    return subprocess.run(
        ["make", target, f"ARTIFACTS_DIR={artifacts}", f"PYTHON313={python313}", "PIP_INSTALL=true"],
        cwd=REPO / "functions",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_build_without_python313_says_it_ships_no_bytecode_and_how_to_fix_it(tmp_path: Path) -> None:
    result = run_recipe(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "stream_processor" / "app.py").is_file()
    assert not list(tmp_path.rglob("*.pyc"))
    # On stdout: `sam build` shows make's stdout (and its stderr only when the build fails).
    warning = result.stdout
    assert NO_BYTECODE in warning and NO_BYTECODE_FIX in warning
    assert "cold start" in warning and "twice the import time" in warning


@pytest.mark.skipif(PYTHON313 is None, reason="no Python 3.13 on this machine")
def test_build_with_python313_ships_bytecode_and_no_warning(tmp_path: Path) -> None:
    result = run_recipe(tmp_path, str(PYTHON313))
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stdout + result.stderr
    package = tmp_path / "stream_processor"
    for module in package.glob("*.py"):
        assert (package / "__pycache__" / f"{module.stem}.cpython-313.pyc").is_file(), module.name


def test_build_refuses_a_python313_that_is_another_python(tmp_path: Path) -> None:
    result = run_recipe(tmp_path, sys.executable)  # this interpreter is not 3.13 (the suite runs on 3.11)
    assert result.returncode != 0
    assert f"PYTHON313={sys.executable} is Python {sys.version_info[0]}.{sys.version_info[1]}" in result.stderr
    assert not list(tmp_path.rglob("*")), "nothing built"


# ---------------------------------------------------------------------------------------------------------------
# The real `sam build`
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamBuild:
    directory: Path
    output: str  # stdout and stderr; SAM relays make's stdout on its stderr


@pytest.fixture(scope="module")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> SamBuild:
    """One `sam build` of all three functions (the makefile method) into a temporary directory."""
    root = tmp_path_factory.mktemp("sam")
    build = root / "build"
    result = subprocess.run(
        [
            str(SAM),
            "build",
            "--template-file",
            str(REPO / "template.yaml"),
            "--build-dir",
            str(build),
            "--cache-dir",
            str(root / "cache"),
            "--config-file",
            str(REPO / "samconfig.toml"),  # cached, parallel
        ],
        cwd=root,  # sam writes .aws-sam/deps into the working directory
        env=build_environment(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert "Build Succeeded" in result.stdout
    return SamBuild(build, result.stdout + result.stderr)


@pytest.fixture(scope="module")
def build_dir(sam_build: SamBuild) -> Path:
    return sam_build.directory


@pytest.mark.slow
def test_sam_build_output_says_whether_it_shipped_bytecode(sam_build: SamBuild) -> None:
    """What the Makefile prints reaches the user through `sam build`, once per function."""
    if PYTHON313:
        assert sam_build.output.count(f"bytecode compiled by {PYTHON313}") == len(FUNCTIONS)
        assert NO_BYTECODE not in sam_build.output
    else:
        assert sam_build.output.count(NO_BYTECODE) == len(FUNCTIONS)
        assert NO_BYTECODE_FIX in sam_build.output


@pytest.mark.slow
@pytest.mark.parametrize("function", FUNCTIONS)
def test_artifact_holds_the_package_and_lambda_binaries(build_dir: Path, function: str) -> None:
    artifact = build_dir / function
    assert (artifact / "stream_processor" / "app.py").is_file()
    assert (artifact / "stream_processor" / "config.py").is_file()
    assert (artifact / GRPC_BINARY).is_file()
    for package in ("momento", "momento_wire_types", "aws_lambda_powertools", "google/protobuf"):
        assert (artifact / package).is_dir(), package
    binaries = list(artifact.rglob("*.so"))
    for binary in binaries:
        assert elf_machine(binary) == ELF_MACHINE_AARCH64, f"{binary.relative_to(artifact)} is not aarch64"
        name = binary.name
        assert ".abi3." in name or ".cpython-313-aarch64-linux-gnu." in name or ".cpython" not in name, name


@pytest.mark.slow
@pytest.mark.parametrize("function", FUNCTIONS)
def test_artifact_holds_nothing_for_the_build_host(build_dir: Path, function: str) -> None:
    artifact = build_dir / function
    host_tag = sys.implementation.cache_tag  # e.g. cpython-311
    assert not list(artifact.rglob(f"*.{host_tag}.pyc")), "bytecode compiled for the build host's Python"
    assert all(".cpython-313." in pyc.name for pyc in artifact.rglob("*.pyc")), "bytecode for another Python"
    assert not (artifact / "bin").exists(), "console scripts pointing at the build host's Python"
    assert not (artifact / "tests").exists()
    assert not list(artifact.rglob("conftest.py"))
    assert not (artifact / "Makefile").exists() and not (artifact / "requirements.txt").exists()


@pytest.mark.slow
@pytest.mark.skipif(PYTHON313 is None, reason="no Python 3.13 on this machine: the build skips Lambda bytecode")
def test_the_package_ships_bytecode_for_lambdas_python(build_dir: Path) -> None:
    # Lambda's code directory is read-only: without these, every cold start compiles each module it imports.
    package = build_dir / "StreamProcessorFunction" / "stream_processor"
    for module in package.glob("*.py"):
        assert (package / "__pycache__" / f"{module.stem}.cpython-313.pyc").is_file(), module.name


@pytest.mark.slow
def test_the_three_artifacts_are_identical_so_deploy_uploads_one(build_dir: Path) -> None:
    # sam package / deploy names S3 objects after this checksum: identical artifacts are uploaded once.
    checksums = {function: dir_checksum(str(build_dir / function)) for function in FUNCTIONS}
    assert len(set(checksums.values())) == 1, checksums


@pytest.mark.slow
def test_built_template_points_at_the_artifacts(build_dir: Path) -> None:
    built = yaml_parse((build_dir / "template.yaml").read_text())
    for function in FUNCTIONS:
        assert built["Resources"][function]["Properties"]["CodeUri"] == function


@pytest.mark.slow
def test_artifact_size_is_within_lambda_limits(
    build_dir: Path, tmp_path: Path, record_property, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = build_dir / "StreamProcessorFunction"
    files = [path for path in artifact.rglob("*") if path.is_file()]
    unzipped_mb = sum(path.stat().st_size for path in files) / 1e6
    package = tmp_path / "artifact.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(artifact))
    zipped_mb = package.stat().st_size / 1e6
    record_property("artifact_unzipped_mb", round(unzipped_mb, 1))
    record_property("artifact_zipped_mb", round(zipped_mb, 1))
    with capsys.disabled():
        print(f"\nLambda artifact (each function): {unzipped_mb:.1f} MB unzipped, {zipped_mb:.1f} MB zipped")
    assert unzipped_mb < LAMBDA_UNZIPPED_LIMIT_MB
    assert zipped_mb < LAMBDA_ZIPPED_UPLOAD_LIMIT_MB


def elf_machine(path: Path) -> int:
    """e_machine of a little-endian ELF file (183 = aarch64, 62 = x86-64)."""
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path.name} is not an ELF file"
    return int.from_bytes(header[18:20], "little")
