"""Logs and metrics: the defaults agree with the template, cause lines carry the cause and its record count."""

from __future__ import annotations

import json
from pathlib import Path

from samcli.yamlhelper import yaml_parse

from stream_processor.observability import DEFAULT_NAMESPACE, log_causes, logger
from tests.fakes import CurrentStdout

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_the_namespace_default_is_the_templates_and_the_service_is_the_stack_name() -> None:
    template = yaml_parse(TEMPLATE.read_text())
    assert template["Mappings"]["Fixed"]["Metrics"]["Namespace"] == DEFAULT_NAMESPACE
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == {"Fn::FindInMap": ["Fixed", "Metrics", "Namespace"]}
    # Deployed, the service is the stack's name (so two stacks never share alarms); the default serves local runs.
    assert environment["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}


def test_a_cause_line_carries_the_cause_and_how_many_records_it_affected(capsys) -> None:
    logger.registered_handler.stream = CurrentStdout()

    log_causes("poison records reported", {"DLQ_URL is not set": 2})

    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert (line["level"], line["message"], line["cause"], line["records"]) == (
        "ERROR",
        "poison records reported",
        "DLQ_URL is not set",
        2,
    )
