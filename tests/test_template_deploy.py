"""Deploying the template: what `sam deploy --guided` asks, what samconfig.toml shows, what CloudFormation refuses.

Guided deploy is SAM CLI's own code (`samcli.commands.deploy.guided_context.GuidedContext.guided_prompts`) run on
template.yaml, with only its two AWS calls replaced (the managed S3 bucket, and the ECR companion stack, which only
image functions use). It asks every template parameter, defaults or not: a NoEcho parameter is asked with hidden input
and no default, and click asks again after an empty answer, so such a parameter would block a user who has nothing to
type. The test answers each question from a table and presses Enter at all the others.

Constraints are evaluated by tests/sam_template.py's `refusals`, a small evaluator of CloudFormation's parameter
constraints and Rules (cfn-lint checks neither for given values). The ranges it is held to come from
AWS::Lambda::EventSourceMapping's resource schema as cfn-lint ships it, not from the template.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import click
import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from click import termui
from click.testing import CliRunner
from samcli.cli.types import CfnParameterOverridesType
from samcli.commands.deploy import guided_context
from samcli.commands.deploy.guided_context import GuidedContext

from tests.sam_template import (
    KMS_KEY_ARN,
    REGION,
    REPO,
    SECRET_ARN,
    STREAM_ARN,
    TEMPLATE,
    Deployment,
    refusals,
    source_template,
    transformed_template,
)

# The settings a user chooses at deploy time; everything else is advanced and has a default that suits most.
MAIN_SETTINGS = [
    "SourceStreamArn",
    "StartingPosition",
    "MomentoApiKeySecretArn",
    "MomentoEndpoint",
    "CacheName",
    "TopicName",
    "KeyTemplate",
    "TtlAttribute",
    "AlarmTopicArn",
]
ADVANCED = "Advanced: "  # the label prefix of the advanced parameter groups

# Guided deploy validates the template with samtranslator through calls it deprecates itself: not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:samtranslator"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:samcli.lib.samlib"),
]


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return source_template()


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return transformed_template()


def defaults(template: dict[str, Any]) -> dict[str, str]:
    return {name: str(parameter["Default"]) for name, parameter in template["Parameters"].items()}


# ---------------------------------------------------------------------------------------------------------------
# sam deploy --guided, driven through SAM CLI's own prompts
# ---------------------------------------------------------------------------------------------------------------


class EmptyAnswerRefused(Exception):
    """A question that asks again after an empty answer: a user with nothing to type is stuck there."""


@dataclass(frozen=True)
class GuidedDeploy:
    questions: list[str]  # every question asked, in order
    parameters: dict[str, str]  # the parameter values guided deploy hands to CloudFormation
    hidden: list[str]  # parameters asked with hidden input


def guided_deploy(answers: Mapping[str, str], template: Path = TEMPLATE) -> GuidedDeploy:
    """Run guided deploy's questions on the template: `answers` by question text, Enter everywhere else."""
    asked: list[str] = []
    reads: Counter[str] = Counter()

    def record(ask: Any) -> Any:
        def asking(text: str, *args: Any, **kwargs: Any) -> Any:
            asked.append(click.unstyle(text).strip())
            return ask(text, *args, **kwargs)

        return asking

    def type_answer(*_: Any) -> str:  # what click reads from the terminal
        question = asked[-1]
        reads[question] += 1
        if reads[question] > 2:
            raise EmptyAnswerRefused(question)
        return answers.get(question, "")

    context = GuidedContext(
        template_file=str(template),
        stack_name="dynamodb-momento-stream-processor",
        s3_bucket=None,
        image_repository=None,
        image_repositories=None,
        s3_prefix=None,
        region=REGION,
        confirm_changeset=True,
        disable_rollback=False,
        parameter_overrides={},
    )
    with (
        CliRunner().isolation(),
        mock.patch.object(guided_context, "prompt", record(guided_context.prompt)),
        mock.patch.object(guided_context, "confirm", record(guided_context.confirm)),
        mock.patch.object(termui, "visible_prompt_func", type_answer),
        mock.patch.object(termui, "hidden_prompt_func", type_answer),
        mock.patch.object(guided_context, "manage_stack", return_value="managed-bucket"),
        mock.patch.object(GuidedContext, "prompt_image_repository", return_value={}),
    ):
        context.guided_prompts(guided_context.get_template_parameters(str(template)))
    chosen = context.guided_parameter_overrides
    return GuidedDeploy(
        questions=asked,
        parameters={name: value["Value"] for name, value in chosen.items()},
        hidden=[name for name, value in chosen.items() if value["Hidden"]],
    )


def test_the_template_has_no_image_function(source: dict[str, Any]) -> None:
    """The one guided step the test replaces without running it only ever asks about image functions."""
    functions = [r for r in source["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert all(f["Properties"].get("PackageType", "Zip") == "Zip" for f in functions)


def test_guided_deploy_completes_with_enter_at_every_question(
    source: dict[str, Any], transformed: dict[str, Any], record_property: Any
) -> None:
    """No key at hand: Enter everywhere deploys the demo table and a secret holding a placeholder."""
    deploy = guided_deploy({})
    record_property("guided_questions", len(deploy.questions))
    assert deploy.hidden == []
    assert deploy.parameters == defaults(source)
    assert refusals(transformed, deploy.parameters) == []
    resources = Deployment(transformed, **deploy.parameters).resources()
    assert {"DemoTable", "MomentoApiKeySecret"} <= set(resources)


def test_guided_deploy_with_an_existing_secret_asks_nothing_about_a_key(transformed: dict[str, Any]) -> None:
    deploy = guided_deploy(
        {
            "Parameter SourceStreamArn": STREAM_ARN,
            "Parameter StartingPosition": "LATEST",
            "Parameter MomentoApiKeySecretArn": SECRET_ARN,
        }
    )
    assert deploy.hidden == []
    assert refusals(transformed, deploy.parameters) == []
    deployment = Deployment(transformed, **deploy.parameters)
    assert "MomentoApiKeySecret" not in deployment.resources()
    assert deployment.environment("StreamProcessorFunction")["MOMENTO_API_KEY_SECRET"] == SECRET_ARN


def test_guided_deploy_asks_the_main_settings_first(source: dict[str, Any]) -> None:
    """Guided deploy asks every parameter (none can be hidden from it) in the template's order: the main settings
    first, then the advanced ones, which Enter keeps at their defaults."""
    questions = guided_deploy({}).questions
    parameters = [question.removeprefix("Parameter ") for question in questions if question.startswith("Parameter ")]
    assert parameters == list(source["Parameters"])
    assert parameters[: len(MAIN_SETTINGS)] == MAIN_SETTINGS


def test_a_no_echo_parameter_would_block_guided_deploy(source: dict[str, Any], tmp_path: Path) -> None:
    """Why the template has none: with nothing to type, its question never ends (the driver above sees that)."""
    template = copy.deepcopy(source)
    template["Parameters"]["SomeKey"] = {"Type": "String", "Default": "", "NoEcho": True}
    path = tmp_path / "template.json"  # SAM CLI reads JSON templates too
    path.write_text(json.dumps(template))
    with pytest.raises(EmptyAnswerRefused, match="Parameter SomeKey"):
        guided_deploy({}, template=path)


# ---------------------------------------------------------------------------------------------------------------
# Parameter groups and the samconfig.toml example
# ---------------------------------------------------------------------------------------------------------------


def parameter_groups(source: dict[str, Any]) -> list[tuple[str, list[str]]]:
    groups = source["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    return [(group["Label"]["default"], group["Parameters"]) for group in groups]


def advanced_parameters(source: dict[str, Any]) -> list[str]:
    return [name for label, names in parameter_groups(source) if label.startswith(ADVANCED) for name in names]


def test_groups_hold_every_parameter_once_in_the_order_guided_deploy_asks(source: dict[str, Any]) -> None:
    groups = parameter_groups(source)
    assert [name for _, names in groups for name in names] == list(source["Parameters"])
    advanced = [label.startswith(ADVANCED) for label, _ in groups]
    assert advanced == sorted(advanced), "an advanced group before a main one"
    main = [name for label, names in groups if not label.startswith(ADVANCED) for name in names]
    assert main == MAIN_SETTINGS


def test_every_parameter_has_a_default_and_a_description(source: dict[str, Any]) -> None:
    for name, parameter in source["Parameters"].items():
        assert "Default" in parameter, name
        assert parameter.get("Description"), name


def samconfig_example() -> tuple[dict[str, str], list[dict[str, str]]]:
    """The commented parameter_overrides of samconfig.toml, uncommented and read as SAM CLI reads them; and the values
    of its inline `e.g.` examples."""
    text = (REPO / "samconfig.toml").read_text()
    tomllib.loads(text)  # the file as it is
    lines = text.splitlines()
    start = lines.index("# parameter_overrides = [")
    end = lines.index("# ]", start)
    block = [line.removeprefix("# ") for line in lines[start : end + 1]]
    read = CfnParameterOverridesType().convert
    overrides = read(tomllib.loads("\n".join(block))["parameter_overrides"], None, None)
    inline = [line.split("# e.g. ", 1)[1] for line in block if "# e.g. " in line]
    examples = [read(tomllib.loads(f"item = {example}")["item"], None, None) for example in inline]
    return overrides, examples


def test_samconfig_example_shows_every_advanced_parameter_at_its_default(
    source: dict[str, Any], transformed: dict[str, Any]
) -> None:
    overrides, examples = samconfig_example()
    assert set(overrides) <= set(source["Parameters"])
    template_defaults = defaults(source)
    for name in advanced_parameters(source):
        assert name in overrides, f"samconfig.toml's example does not show {name}"
        assert overrides[name] == template_defaults[name], f"samconfig.toml shows {name}={overrides[name]!r}"
    assert refusals(transformed, overrides) == []
    assert examples, "no inline example"
    for example in examples:
        assert refusals(transformed, overrides | example) == [], example


# ---------------------------------------------------------------------------------------------------------------
# Guards: a value the event source mapping refuses fails `sam deploy` before anything is created
# ---------------------------------------------------------------------------------------------------------------

MAPPING_SCHEMA = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, "AWS::Lambda::EventSourceMapping").schema


def mapping_parameters() -> dict[str, str]:
    """Each event source mapping property that a parameter sets, and that parameter."""
    template = transformed_template()
    (mapping,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    return {
        name: value["Ref"]
        for name, value in mapping["Properties"].items()
        if isinstance(value, dict) and value.get("Ref") in template["Parameters"]
    }


INTEGER_PROPERTIES = {
    name: parameter
    for name, parameter in mapping_parameters().items()
    if MAPPING_SCHEMA["properties"][name].get("type") == "integer"
}
# Beyond the schema's minimum and maximum: Lambda refuses a record age of 0 to 59 (the schema's description says so),
# and the template refuses -1 retries on purpose (until the record expires: one bad batch would block its shard 24 h).
REFUSED_INSIDE_THE_RANGE = {
    "MaximumRecordAgeInSeconds": range(0, 60),
    "MaximumRetryAttempts": range(-1, 0),
}


def test_every_integer_setting_of_the_mapping_is_a_guarded_parameter() -> None:
    assert set(INTEGER_PROPERTIES) >= {
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "ParallelizationFactor",
        "MaximumRetryAttempts",
        "MaximumRecordAgeInSeconds",
    }
    age = MAPPING_SCHEMA["properties"]["MaximumRecordAgeInSeconds"]["description"]
    assert "minimum valid value for maximum record age is 60" in age


@pytest.mark.parametrize("mapping_property", INTEGER_PROPERTIES)
def test_parameter_accepts_exactly_what_the_mapping_accepts(transformed: dict[str, Any], mapping_property: str) -> None:
    parameter = INTEGER_PROPERTIES[mapping_property]
    schema = MAPPING_SCHEMA["properties"][mapping_property]
    low, high = schema["minimum"], schema["maximum"]
    refused_inside = REFUSED_INSIDE_THE_RANGE.get(mapping_property, range(0))
    candidates = {low - 1, low, low + 1, high - 1, high, high + 1, -1, 0, 1, 59, 60, 100}
    candidates |= {refused_inside.start - 1, refused_inside.start, refused_inside.stop - 1, refused_inside.stop}
    wrong = {}
    for value in sorted(candidates):
        expected = low <= value <= high and value not in refused_inside
        answer = refusals(transformed, {parameter: str(value)})
        if (answer == []) != expected:
            wrong[value] = answer or "accepted"
        elif not all(parameter in message for message in answer):
            wrong[value] = f"a message that does not name the parameter: {answer}"
    assert not wrong, f"{parameter}: {wrong}"
    for not_a_number in ("", "ten", "1 0"):
        assert refusals(transformed, {parameter: not_a_number}), not_a_number


def test_starting_position_is_one_that_dynamodb_streams_support(transformed: dict[str, Any]) -> None:
    assert mapping_parameters()["StartingPosition"] == "StartingPosition"
    for accepted in ("TRIM_HORIZON", "LATEST"):
        assert refusals(transformed, {"StartingPosition": accepted}) == []
    for refused in ("AT_TIMESTAMP", "latest", ""):  # AT_TIMESTAMP is for Kinesis and Kafka only
        assert refusals(transformed, {"StartingPosition": refused}), refused


def test_event_filter_pattern_is_empty_or_a_json_object_that_fits(transformed: dict[str, Any]) -> None:
    limit = MAPPING_SCHEMA["definitions"]["Filter"]["properties"]["Pattern"]["maxLength"]
    head, tail = '{"eventName": ["', '"]}'
    longest = head + "x" * (limit - len(head) - len(tail)) + tail
    too_long = head + "x" * (limit - len(head) - len(tail) + 1) + tail
    assert json.loads(longest) and len(longest) == limit
    for accepted in ("", json.dumps({"eventName": ["INSERT", "MODIFY"]}), longest):
        assert refusals(transformed, {"EventFilterPattern": accepted}) == [], accepted[:40]
    for refused in (too_long, "INSERT", '["INSERT"]'):
        assert refusals(transformed, {"EventFilterPattern": refused}), refused[:40]


def test_every_constrained_parameter_explains_its_constraint(source: dict[str, Any]) -> None:
    constraints = {"AllowedPattern", "AllowedValues", "MinValue", "MaxValue", "MinLength", "MaxLength"}
    for name, parameter in source["Parameters"].items():
        if constraints & set(parameter):
            assert parameter.get("ConstraintDescription"), name


def test_defaults_are_accepted(source: dict[str, Any], transformed: dict[str, Any]) -> None:
    assert refusals(transformed, defaults(source)) == []


# ---------------------------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "accepted"),
    [
        ({}, True),  # the stack's own secret, AWS managed key
        ({"MomentoApiKeySecretArn": SECRET_ARN}, True),
        ({"MomentoApiKeySecretArn": SECRET_ARN, "MomentoApiKeySecretKmsKeyArn": KMS_KEY_ARN}, True),
        ({"MomentoApiKeySecretKmsKeyArn": KMS_KEY_ARN}, False),  # a key for a secret the stack makes without it
    ],
)
def test_a_kms_key_goes_with_an_existing_secret(
    transformed: dict[str, Any], values: dict[str, str], accepted: bool
) -> None:
    answer = refusals(transformed, values)
    assert (answer == []) is accepted
    if not accepted:
        (message,) = answer
        assert "MomentoApiKeySecretKmsKeyArn" in message and "MomentoApiKeySecretArn" in message


def test_the_evaluator_sees_each_kind_of_refusal(transformed: dict[str, Any]) -> None:
    """The evaluator is not vacuous: a bad pattern, a bad choice, a bad number and a broken rule each get refused."""
    for values in (
        {"SourceStreamArn": "orders"},
        {"LogLevel": "VERBOSE"},
        {"BatchSize": "0"},
        {"CacheName": ""},
        {"EventFilterPattern": "{" + "x" * 5000 + "}"},
        {"MaximumRecordAgeInSeconds": "30"},
    ):
        assert refusals(transformed, values), values
