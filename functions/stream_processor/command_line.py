"""What the command-line tools (redrive, backfill) share: AWS set-up problems as one line, not a traceback."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from botocore.exceptions import NoCredentialsError, NoRegionError, PartialCredentialsError

__all__ = ["aws_setup_errors"]


@contextlib.contextmanager
def aws_setup_errors(prog: str) -> Iterator[None]:
    """Turn a missing AWS region or missing credentials into one line on stderr and exit status 2."""
    try:
        yield
    except NoRegionError:
        print(
            f"{prog}: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or use a profile that has one",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    except (NoCredentialsError, PartialCredentialsError):
        print(
            f"{prog}: no AWS credentials: configure a profile (aws configure / AWS_PROFILE) or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
