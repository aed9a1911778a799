"""Environment variables of a local run: set for a block and put back after, fake AWS credentials for moto.

A local run must neither use nor change the user's AWS set-up: moto gets fake credentials and a region, and any
profile, session token or custom endpoint in the user's shell is hidden while the run lasts.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = ["fake_aws_environment", "functions_on_path", "quiet_grpc_core", "scoped_environment"]


@contextlib.contextmanager
def scoped_environment(values: Mapping[str, str], remove: Sequence[str] = ()) -> Iterator[None]:
    """Set and remove environment variables for the block, then put every one back as it was."""
    names = {*values, *remove}
    saved = {name: os.environ.get(name) for name in names}
    for name in remove:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def fake_aws_environment(region: str) -> contextlib.AbstractContextManager[None]:
    """Fake credentials and ``region`` for moto; nothing of the user's AWS set-up (profile, endpoints) leaks in."""
    endpoints = [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]
    return scoped_environment(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        },
        remove=["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", *endpoints],
    )


def quiet_grpc_core() -> None:
    """Keep gRPC's C core from writing its own log lines (e.g. ``chttp2_transport.cc … Got goaway``) to the terminal.

    The core reads ``GRPC_VERBOSITY`` once, when grpc is first imported, so this must run before that; failures
    still reach the caller as SDK errors. A value the user set is kept.
    """
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def functions_on_path() -> None:
    """Put ``functions/`` (the Lambda code root, where ``stream_processor`` lives) on the import path: the Makefile
    sets PYTHONPATH, a bare ``python -m local_pipeline`` from the repository root does not."""
    functions = Path(__file__).resolve().parent.parent / "functions"
    if functions.is_dir() and str(functions) not in sys.path:
        sys.path.insert(0, str(functions))
