"""Fixtures of the local pipeline's tests: moto with fake credentials, a table with a stream, an SQS queue."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from tests.local_pipeline.mapping_support import REGION, Table, create_table


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for every AWS API; nothing of the machine's AWS set-up (profile, endpoint, session) leaks in."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def table(aws: None) -> Table:
    return create_table()


@pytest.fixture
def dlq(aws: None) -> str:
    return boto3.client("sqs").create_queue(QueueName="stream-processor-dlq")["QueueUrl"]
