"""The alarms: each watches a metric that exists, exactly as it is emitted, and says what it means and what to do.

The function's own metrics are Powertools EMF. The test runs `stream_processor.observability` in a fresh interpreter
with the deployed function's environment, publishes one batch summary with a distinct count in every field, and reads
the namespace, the dimensions and each field's metric name from the EMF document printed. An alarm on a summary field
must watch exactly that metric: same namespace, same name, same full set of dimensions (CloudWatch matches a metric
only with all of its dimensions).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from tests.sam_template import REGION, REPO, Deployment, transformed_template

# Alarms on the function's own metrics, and the BatchSummary field each one watches.
OWN_METRIC_ALARMS = {"BatchItemFailuresAlarm": "failures", "PoisonRecordsAlarm": "poison_records"}
CLOUDWATCH_DESCRIPTION_LIMIT = 1024


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return transformed_template()


@pytest.fixture(scope="module")
def alarms(transformed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every alarm of the default deployment, resolved."""
    deployment = Deployment(transformed)
    return {name: alarm["Properties"] for name, alarm in deployment.resources("AWS::CloudWatch::Alarm").items()}


@dataclass(frozen=True)
class EmittedMetrics:
    """What one published batch summary puts into CloudWatch."""

    namespace: str
    dimensions: dict[str, str]
    metric_of: dict[str, str]  # BatchSummary field -> metric name


PUBLISH_ONE_SUMMARY = """
import json
from dataclasses import fields
from stream_processor import observability
counts = {field.name: number for number, field in enumerate(fields(observability.BatchSummary), start=1)}
observability.publish_summary(observability.BatchSummary(**counts))
observability.metrics.flush_metrics()
print(json.dumps(counts))
"""


def emitted_metrics(environment: dict[str, str]) -> EmittedMetrics:
    """Publish one summary as the function would with this environment; read back its EMF document."""
    result = subprocess.run(
        [sys.executable, "-c", PUBLISH_ONE_SUMMARY],
        env=environment | {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO / "functions")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    *lines, counts_line = result.stdout.splitlines()
    counts = json.loads(counts_line)
    (document,) = [json.loads(line) for line in lines if line.startswith('{"_aws"')]
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    (dimension_names,) = directive["Dimensions"]
    by_value = {document[metric["Name"]][0]: metric["Name"] for metric in directive["Metrics"]}
    return EmittedMetrics(
        namespace=directive["Namespace"],
        dimensions={name: document[name] for name in dimension_names},
        metric_of={field: by_value[float(count)] for field, count in counts.items() if float(count) in by_value},
    )


@pytest.fixture(scope="module")
def emitted(transformed: dict[str, Any]) -> EmittedMetrics:
    return emitted_metrics(Deployment(transformed).environment("StreamProcessorFunction"))


# ---------------------------------------------------------------------------------------------------------------
# The function's own metrics: systemic failures and poison records
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alarm", "field"), OWN_METRIC_ALARMS.items())
def test_alarm_watches_the_metric_as_the_code_emits_it(
    alarms: dict[str, dict[str, Any]], emitted: EmittedMetrics, alarm: str, field: str
) -> None:
    properties = alarms[alarm]
    assert properties["Namespace"] == emitted.namespace
    assert properties["MetricName"] == emitted.metric_of[field]
    assert {d["Name"]: d["Value"] for d in properties["Dimensions"]} == emitted.dimensions


def test_metrics_are_per_stack(transformed: dict[str, Any], emitted: EmittedMetrics) -> None:
    """The service dimension is the stack's name: two stacks in one account never trip each other's alarms."""
    assert emitted.dimensions == {"service": Deployment(transformed).resolve({"Ref": "AWS::StackName"})}


def test_failures_alarm_fires_on_sustained_failures_only(alarms: dict[str, dict[str, Any]]) -> None:
    # A passing blip is retried by Lambda and heals; a revoked key or a deleted cache fails every minute.
    failures = alarms["BatchItemFailuresAlarm"]
    assert (failures["Statistic"], failures["Period"]) == ("Sum", 60)
    assert failures["EvaluationPeriods"] >= failures["DatapointsToAlarm"] >= 3
    assert (failures["Threshold"], failures["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert failures["TreatMissingData"] == "notBreaching"  # a quiet stream is not a failing one


def test_poison_alarm_fires_on_the_first_poison_record(alarms: dict[str, dict[str, Any]]) -> None:
    poison = alarms["PoisonRecordsAlarm"]
    assert (poison["Statistic"], poison["Period"], poison["EvaluationPeriods"]) == ("Sum", 60, 1)
    assert (poison["Threshold"], poison["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


# ---------------------------------------------------------------------------------------------------------------
# Lambda's and SQS's metrics
# ---------------------------------------------------------------------------------------------------------------


def test_alarms_watch_the_dlq_the_iterator_age_and_errors(alarms: dict[str, dict[str, Any]]) -> None:
    dlq = alarms["DeadLetterQueueAlarm"]
    assert (dlq["Namespace"], dlq["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": "<DeadLetterQueue.QueueName>"}]
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")

    age = alarms["IteratorAgeAlarm"]
    (metric,) = [m["MetricStat"]["Metric"] for m in age["Metrics"] if "MetricStat" in m]
    assert (metric["Namespace"], metric["MetricName"]) == ("AWS/Lambda", "IteratorAge")
    assert metric["Dimensions"] == [{"Name": "FunctionName", "Value": "<StreamProcessorFunction>"}]
    (expression,) = [m for m in age["Metrics"] if m.get("ReturnData")]
    assert expression["Expression"].endswith("/ 1000")  # IteratorAge is in ms, the threshold parameter in seconds
    assert age["Threshold"] == "300"

    errors = alarms["FunctionErrorsAlarm"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": "<StreamProcessorFunction>"}]


def test_errors_alarm_does_not_claim_what_it_cannot_see(alarms: dict[str, dict[str, Any]]) -> None:
    """Systemic Momento failures are reported per record, so Lambda's Errors stays 0 for them."""
    description = alarms["FunctionErrorsAlarm"]["AlarmDescription"]
    assert "systemic" not in description.lower()
    assert "BatchItemFailuresAlarm" in description


# ---------------------------------------------------------------------------------------------------------------
# Every alarm: a runbook step, notifications, an output
# ---------------------------------------------------------------------------------------------------------------


def runbook_steps() -> set[str]:
    """The alarm names that head a step of the README's runbook (level-4 headings under "Operate")."""
    readme = (REPO / "README.md").read_text()
    operate = readme[readme.index("\n## Operate\n") :]
    operate = operate[: operate.find("\n## ", 1)]
    return set(re.findall(r"^#### (\w+Alarm)\b", operate, flags=re.MULTILINE))


def test_every_alarm_names_its_runbook_step(alarms: dict[str, dict[str, Any]]) -> None:
    assert set(alarms) == runbook_steps()
    for name, properties in alarms.items():
        description = properties["AlarmDescription"]
        assert f'Runbook: README, Operate, "{name}"' in description, name
        assert len(description) <= CLOUDWATCH_DESCRIPTION_LIMIT, (name, len(description))


def test_alarms_notify_the_optional_topic(transformed: dict[str, Any]) -> None:
    topic = f"arn:aws:sns:{REGION}:111122223333:ops"
    notified = Deployment(transformed, AlarmTopicArn=topic).resources("AWS::CloudWatch::Alarm")
    silent = Deployment(transformed).resources("AWS::CloudWatch::Alarm")
    assert (
        set(notified)
        == set(silent)
        == set(OWN_METRIC_ALARMS)
        | {
            "DeadLetterQueueAlarm",
            "IteratorAgeAlarm",
            "FunctionErrorsAlarm",
        }
    )
    for name in notified:
        assert notified[name]["Properties"]["AlarmActions"] == notified[name]["Properties"]["OKActions"] == [topic]
        assert "AlarmActions" not in silent[name]["Properties"] and "OKActions" not in silent[name]["Properties"]


def test_every_alarm_is_an_output(transformed: dict[str, Any]) -> None:
    alarms = {name for name, r in transformed["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    for alarm in alarms:
        assert transformed["Outputs"][f"{alarm}Name"]["Value"] == {"Ref": alarm}
