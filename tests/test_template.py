"""The SAM template: it lints, broken copies are rejected, it agrees with the code, and its safety properties hold.

Structural checks run on the TRANSFORMED template (samtranslator, offline, as cfn-lint does), resolved for concrete
deployments by a small evaluator of the intrinsic functions the template uses: the demo table with a stack-made
secret, and an existing stream with an existing KMS-encrypted secret.
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from samcli.yamlhelper import yaml_parse
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from stream_processor.config import POWERTOOLS_VARIABLES, VARIABLES, load_settings

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
SAM = Path(sys.executable).parent / "sam"
REGION = "us-east-1"

FUNCTIONS = {
    "StreamProcessorFunction": "stream_processor.app.handler",
    "RedriveFunction": "stream_processor.redrive.handler",
    "BackfillFunction": "stream_processor.backfill.handler",
}

# An existing stream, table, secret and key, as a user would pass them.
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:111122223333:table/orders/stream/2026-01-01T00:00:00.000"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:111122223333:table/orders"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:111122223333:secret:momento-api-key-AbCdEf"
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
EXISTING = {
    "SourceStreamArn": STREAM_ARN,
    "MomentoApiKeySecretArn": SECRET_ARN,
    "MomentoApiKeySecretKmsKeyArn": KMS_KEY_ARN,
}
DEMO = {"MomentoApiKey": "not-a-real-key"}


# ---------------------------------------------------------------------------------------------------------------
# sam validate --lint (the CI check) on the template and on broken copies
# ---------------------------------------------------------------------------------------------------------------


def sam_validate(template: Path) -> subprocess.CompletedProcess[str]:
    """`sam validate --lint` offline: no credentials, telemetry off, a region (plain validate needs one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
    return subprocess.run(
        [str(SAM), "validate", "--lint", "--template-file", str(template)],
        capture_output=True,
        text=True,
        env=env,
        cwd=template.parent,
        timeout=300,
        check=False,
    )


# Each copy breaks one thing that cfn-lint >= 1.54 (no SAM transform) lets through silently.
BROKEN_COPIES = {
    "batch-size-over-10000": ("BatchSize: !Ref BatchSize", "BatchSize: 20000", "20000"),
    "misspelt-retry-property": (
        "MaximumRetryAttempts: !Ref MaximumRetryAttempts",
        "MaxRetryAttempts: !Ref MaximumRetryAttempts",
        "MaxRetryAttempts",
    ),
    "unknown-runtime": ("Runtime: python3.13", "Runtime: python3.99", "python3.99"),
    "parallelization-over-10": (
        "ParallelizationFactor: !Ref ParallelizationFactor",
        "ParallelizationFactor: 11",
        "11 is greater than the maximum of 10",
    ),
}


@pytest.fixture(scope="module")
def lint_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """sam validate --lint on the template and on every broken copy, run side by side (each takes seconds)."""
    text = TEMPLATE.read_text()
    directory = tmp_path_factory.mktemp("broken-templates")
    templates = {"original": TEMPLATE}
    for name, (old, new, _) in BROKEN_COPIES.items():
        assert text.count(old) == 1, f"the template no longer contains {old!r} exactly once"
        templates[name] = directory / f"{name}.yaml"
        templates[name].write_text(text.replace(old, new))
    with ThreadPoolExecutor(max_workers=2) as pool:  # the machine has 2 cores
        return dict(zip(templates, pool.map(sam_validate, templates.values()), strict=True))


def test_sam_validate_lint_accepts_the_template(lint_results: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = lint_results["original"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


@pytest.mark.parametrize("name", BROKEN_COPIES)
def test_sam_validate_lint_rejects_a_broken_copy(
    name: str, lint_results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = lint_results[name]
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{name} passed sam validate --lint:\n{output}"
    assert BROKEN_COPIES[name][2] in output, output


# ---------------------------------------------------------------------------------------------------------------
# The transformed template, and an evaluator of its intrinsic functions for one deployment
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def transformed(source: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation template that SAM makes of ours, offline (local CodeUri replaced as cfn-lint does)."""
    sam_template = copy.deepcopy(source)
    sam_template["Globals"]["Function"]["CodeUri"] = "s3://bucket/key"
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": REGION}):
        return Translator(managed_policy_map={}, sam_parser=Parser()).translate(sam_template, parameter_values={})


NO_VALUE = object()


class Deployment:
    """One deployment of a template: parameter values (defaults plus overrides) and the intrinsics resolved with them.

    A resource's Ref resolves to "<Name>" and Fn::GetAtt to "<Name.Attribute>", which is enough to tell which
    resource a value points at.
    """

    def __init__(self, template: dict[str, Any], **overrides: str) -> None:
        self.template = template
        self.parameters = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
        unknown = set(overrides) - set(self.parameters)
        assert not unknown, f"no such parameters: {unknown}"
        self.parameters |= overrides
        self.parameters |= {
            "AWS::Region": REGION,
            "AWS::AccountId": "123456789012",
            "AWS::Partition": "aws",
            "AWS::StackName": "stack",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def condition(self, name: str) -> bool:
        return self.truth(self.template["Conditions"][name])

    def truth(self, node: dict[str, Any]) -> bool:
        ((function, argument),) = node.items()
        if function == "Fn::Equals":
            return self.resolve(argument[0]) == self.resolve(argument[1])
        if function == "Fn::Not":
            return not self.truth(argument[0])
        if function == "Fn::And":
            return all(self.truth(item) for item in argument)
        if function == "Fn::Or":
            return any(self.truth(item) for item in argument)
        if function == "Condition":
            return self.condition(argument)
        raise AssertionError(f"not a condition: {node}")

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [item for item in map(self.resolve, node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                name, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
                return f"<{name}.{attribute}>"
            if key == "Fn::If":
                name, if_true, if_false = argument
                return self.resolve(if_true if self.condition(name) else if_false)
            if key == "Fn::Sub":
                return self.sub(argument)
            if key == "Fn::Join":
                return argument[0].join(self.resolve(argument[1]))
            if key == "Fn::Split":
                return self.resolve(argument[1]).split(argument[0])
            if key == "Fn::Select":
                return self.resolve(argument[1])[int(argument[0])]
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        return self.parameters.get(name, f"<{name}>")

    def sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                return f"<{name}>"
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", value, text)

    def resources(self, kind: str | None = None) -> dict[str, dict[str, Any]]:
        """The resources this deployment creates (their Condition holds), resolved."""
        return {
            name: self.resolve(resource)
            for name, resource in self.template["Resources"].items()
            if (kind is None or resource["Type"] == kind)
            and ("Condition" not in resource or self.condition(resource["Condition"]))
        }

    def environment(self, function: str) -> dict[str, str]:
        return self.resources()[function]["Properties"]["Environment"]["Variables"]


def statements_of(deployment: Deployment, function: str) -> list[dict[str, Any]]:
    """Every IAM statement of the function's role: inline policies and attached managed policies."""
    resources = deployment.resources()
    role_name = deployment.template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = resources[role_name]["Properties"]
    statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    for arn in role.get("ManagedPolicyArns", []):
        match = re.fullmatch(r"<(\w+)>", arn)
        assert match, f"{function}'s role attaches {arn}: only the stack's own, scoped managed policies are allowed"
        statements += resources[match.group(1)]["Properties"]["PolicyDocument"]["Statement"]
    return statements


def grants_of(deployment: Deployment, function: str) -> set[tuple[str, str]]:
    """(action, resource) pairs the function's role allows."""
    grants = set()
    for statement in statements_of(deployment, function):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        grants |= {(action, resource) for action in actions for resource in resources}
    return grants


def logs(log_group: str) -> set[tuple[str, str]]:
    return {("logs:CreateLogStream", f"<{log_group}.Arn>"), ("logs:PutLogEvents", f"<{log_group}.Arn>")}


def stream_reads(stream: str) -> set[tuple[str, str]]:
    return {(f"dynamodb:{action}", stream) for action in ("DescribeStream", "GetRecords", "GetShardIterator")}


# ---------------------------------------------------------------------------------------------------------------
# The functions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("function", "handler"), FUNCTIONS.items())
def test_functions_are_arm64_python313_makefile_builds(
    source: dict[str, Any], transformed: dict[str, Any], function: str, handler: str
) -> None:
    properties = transformed["Resources"][function]["Properties"]
    assert properties["Handler"] == handler
    assert properties["Runtime"] == "python3.13"
    assert properties["Architectures"] == ["arm64"]
    assert source["Resources"][function]["Metadata"] == {"BuildMethod": "makefile"}
    assert source["Globals"]["Function"]["CodeUri"] == "functions/"


@pytest.mark.parametrize("handler", FUNCTIONS.values())
def test_every_handler_exists_in_the_package(handler: str) -> None:
    module_name, function = handler.rsplit(".", 1)
    # Lambda imports the module from the code root (functions/) and looks the handler up on it.
    module = importlib.import_module(module_name)
    assert Path(module.__file__).resolve().is_relative_to(REPO / "functions"), f"{module_name} is not in functions/"
    assert callable(getattr(module, function, None)), f"{module_name} has no handler {function!r}"


def test_memory_and_timeouts_are_parameters_with_sensible_defaults(source: dict[str, Any]) -> None:
    parameters = source["Parameters"]
    resources = source["Resources"]
    assert source["Globals"]["Function"]["MemorySize"] == {"Ref": "MemorySize"}
    assert source["Globals"]["Function"]["Timeout"] == {"Ref": "Timeout"}
    assert 128 <= parameters["MemorySize"]["Default"] <= 2048
    assert 10 <= parameters["Timeout"]["Default"] <= 300
    for function in ("RedriveFunction", "BackfillFunction"):
        assert resources[function]["Properties"]["Timeout"] == {"Ref": "OnDemandTimeout"}
    assert parameters["OnDemandTimeout"]["Default"] > parameters["Timeout"]["Default"]


# ---------------------------------------------------------------------------------------------------------------
# The event source mapping
# ---------------------------------------------------------------------------------------------------------------


def the_mapping(deployment: Deployment) -> dict[str, Any]:
    (mapping,) = deployment.resources("AWS::Lambda::EventSourceMapping").values()
    return mapping["Properties"]


def test_mapping_reports_partial_failures_bisects_and_sends_failures_to_the_dlq(transformed: dict[str, Any]) -> None:
    mapping = the_mapping(Deployment(transformed, **DEMO))
    assert mapping["FunctionName"] == "<StreamProcessorFunction>"
    assert mapping["EventSourceArn"] == "<DemoTable.StreamArn>"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": "<DeadLetterQueue.Arn>"}}
    assert mapping["MetricsConfig"] == {"Metrics": ["EventCount"]}
    assert "FilterCriteria" not in mapping  # no pattern: every record


def test_mapping_defaults(transformed: dict[str, Any]) -> None:
    mapping = the_mapping(Deployment(transformed, **DEMO))
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["BatchSize"] == "100"
    assert mapping["MaximumBatchingWindowInSeconds"] == "0"
    assert mapping["ParallelizationFactor"] == "1"
    assert mapping["MaximumRecordAgeInSeconds"] == "-1"


def test_retries_are_bounded_by_default_and_never_infinite(source: dict[str, Any], transformed: dict[str, Any]) -> None:
    retries = source["Parameters"]["MaximumRetryAttempts"]
    assert 0 <= retries["Default"] <= 10, "a small bounded number: -1 lets one bad batch block a shard for a day"
    assert retries["MinValue"] >= 0, "the parameter must not accept -1 (retry until the record expires)"
    assert the_mapping(Deployment(transformed, **DEMO))["MaximumRetryAttempts"] == str(retries["Default"])


@pytest.mark.parametrize(
    ("parameter", "low", "high"),
    [
        ("BatchSize", 1, 10000),
        ("ParallelizationFactor", 1, 10),
        ("MaximumBatchingWindowInSeconds", 0, 300),
        ("MaximumRetryAttempts", 0, 10000),
        ("MaximumRecordAgeInSeconds", -1, 604800),
    ],
)
def test_mapping_parameters_have_the_aws_bounds(source: dict[str, Any], parameter: str, low: int, high: int) -> None:
    assert source["Parameters"][parameter]["MinValue"] == low
    assert source["Parameters"][parameter]["MaxValue"] == high


def test_tuned_mapping_on_an_existing_stream(transformed: dict[str, Any]) -> None:
    pattern = json.dumps({"eventName": ["INSERT", "MODIFY"]})
    deployment = Deployment(
        transformed,
        **EXISTING,
        StartingPosition="LATEST",
        BatchSize="10000",
        ParallelizationFactor="10",
        MaximumRetryAttempts="2",
        EventFilterPattern=pattern,
    )
    mapping = the_mapping(deployment)
    assert mapping["EventSourceArn"] == STREAM_ARN
    assert mapping["StartingPosition"] == "LATEST"
    assert mapping["BatchSize"] == "10000"
    assert mapping["ParallelizationFactor"] == "10"
    assert mapping["MaximumRetryAttempts"] == "2"
    assert mapping["FilterCriteria"] == {"Filters": [{"Pattern": pattern}]}
    assert "DemoTable" not in deployment.resources()


# ---------------------------------------------------------------------------------------------------------------
# Source: demo table or existing stream
# ---------------------------------------------------------------------------------------------------------------


def test_demo_table_is_the_weather_table_with_a_new_and_old_images_stream(transformed: dict[str, Any]) -> None:
    table = Deployment(transformed, **DEMO).resources()["DemoTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "Location", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "Location", "AttributeType": "S"}]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ExpiresAt", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_table_name_comes_from_the_demo_table_or_the_stream_arn(transformed: dict[str, Any], function: str) -> None:
    assert Deployment(transformed, **DEMO).environment(function)["TABLE_NAME"] == "<DemoTable>"
    assert Deployment(transformed, **EXISTING).environment(function)["TABLE_NAME"] == "orders"


def test_source_stream_parameter_accepts_stream_arns_only(source: dict[str, Any]) -> None:
    pattern = re.compile(source["Parameters"]["SourceStreamArn"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch(STREAM_ARN)
    assert not pattern.fullmatch(TABLE_ARN)  # a table ARN, not its stream
    assert not pattern.fullmatch("orders")


# ---------------------------------------------------------------------------------------------------------------
# Dead-letter queue
# ---------------------------------------------------------------------------------------------------------------


def test_dead_letter_queue_is_encrypted_and_keeps_messages_14_days(transformed: dict[str, Any]) -> None:
    deployment = Deployment(transformed, **DEMO)
    (name,) = deployment.resources("AWS::SQS::Queue")
    queue = deployment.resources()[name]["Properties"]
    assert name == "DeadLetterQueue"
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    for function in FUNCTIONS:
        assert deployment.environment(function)["DLQ_URL"] == "<DeadLetterQueue>"  # Ref of a queue is its URL


# ---------------------------------------------------------------------------------------------------------------
# Momento API key: a secret, never a plain environment variable
# ---------------------------------------------------------------------------------------------------------------


def test_api_key_parameter_is_no_echo_and_stored_only_in_a_secret(
    source: dict[str, Any], transformed: dict[str, Any]
) -> None:
    assert source["Parameters"]["MomentoApiKey"]["NoEcho"] is True
    # Conditions and the rule only compare it with "": no value flows from there.
    uses = [path for path in paths_to({"Ref": "MomentoApiKey"}, transformed) if path[0] not in ("Conditions", "Rules")]
    assert uses == [("Resources", "MomentoApiKeySecret", "Properties", "SecretString")], uses


@pytest.mark.parametrize(("overrides", "secret"), [(DEMO, "<MomentoApiKeySecret>"), (EXISTING, SECRET_ARN)])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_get_the_secret_arn_and_no_key(
    transformed: dict[str, Any], overrides: dict[str, str], secret: str, function: str
) -> None:
    environment = Deployment(transformed, **overrides).environment(function)
    assert environment["MOMENTO_API_KEY_SECRET"] == secret
    # Declared only so that sam local --env-vars can set them; empty in AWS.
    assert environment["MOMENTO_API_KEY"] == ""
    assert environment["MOMENTO_LOCAL_ENDPOINT"] == ""
    assert overrides.get("MomentoApiKey", "unset") not in environment.values()


def test_the_stack_makes_a_secret_only_when_given_the_key(transformed: dict[str, Any]) -> None:
    assert "MomentoApiKeySecret" in Deployment(transformed, **DEMO).resources()
    assert "MomentoApiKeySecret" not in Deployment(transformed, **EXISTING).resources()


@pytest.mark.parametrize(
    ("overrides", "accepted"),
    [({}, False), (DEMO, True), ({"MomentoApiKeySecretArn": SECRET_ARN}, True), (DEMO | EXISTING, False)],
)
def test_rule_requires_exactly_one_api_key_source(
    transformed: dict[str, Any], overrides: dict[str, str], accepted: bool
) -> None:
    deployment = Deployment(transformed, **overrides)
    (assertion,) = transformed["Rules"]["OneMomentoApiKeySource"]["Assertions"]
    assert deployment.truth(assertion["Assert"]) is accepted


def paths_to(needle: Any, node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if node == needle:
        return [path]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    return [found for key, child in children for found in paths_to(needle, child, (*path, key))]


# ---------------------------------------------------------------------------------------------------------------
# Least privilege
# ---------------------------------------------------------------------------------------------------------------


def expected_grants(stream: str, table: str, secret: str, kms_key: str | None) -> dict[str, set[tuple[str, str]]]:
    shared = {("secretsmanager:GetSecretValue", secret), ("sqs:SendMessage", "<DeadLetterQueue.Arn>")}
    if kms_key:
        shared.add(("kms:Decrypt", kms_key))
    return {
        "StreamProcessorFunction": shared
        | logs("StreamProcessorLogGroup")
        | stream_reads(stream)
        | {("dynamodb:ListStreams", f"{table}/stream/*"), ("dynamodb:BatchGetItem", table)},
        "RedriveFunction": shared
        | logs("RedriveLogGroup")
        | stream_reads(stream)
        | {(f"sqs:{action}", "<DeadLetterQueue.Arn>") for action in DLQ_DRAIN}
        | {("dynamodb:GetItem", table), ("dynamodb:BatchGetItem", table)},
        "BackfillFunction": shared
        | logs("BackfillLogGroup")
        | {("dynamodb:Scan", table), ("dynamodb:DescribeTable", table)},
    }


DLQ_DRAIN = ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_gets_exactly_what_it_needs_on_an_existing_stream(
    transformed: dict[str, Any], function: str
) -> None:
    expected = expected_grants(STREAM_ARN, TABLE_ARN, SECRET_ARN, KMS_KEY_ARN)[function]
    assert grants_of(Deployment(transformed, **EXISTING), function) == expected


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_gets_exactly_what_it_needs_on_the_demo_table(transformed: dict[str, Any], function: str) -> None:
    expected = expected_grants("<DemoTable.StreamArn>", "<DemoTable.Arn>", "<MomentoApiKeySecret>", None)[function]
    assert grants_of(Deployment(transformed, **DEMO), function) == expected


def test_kms_decrypt_only_through_secrets_manager(transformed: dict[str, Any]) -> None:
    (statement,) = [
        s for s in statements_of(Deployment(transformed, **EXISTING), "RedriveFunction") if s["Action"] == "kms:Decrypt"
    ]
    assert statement["Condition"] == {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}}


@pytest.mark.parametrize("overrides", [DEMO, EXISTING])
def test_no_wildcard_resource_or_action_anywhere(transformed: dict[str, Any], overrides: dict[str, str]) -> None:
    """No statement needs "*": every action used here supports resource-level permissions (ListStreams is scoped to
    the table's streams, as in SAM's own DynamoDBStreamReadPolicy); X-Ray, which would need "*", is not enabled.
    The AWS managed policies SAM would attach (AWSLambdaBasicExecutionRole, AWSLambdaDynamoDBExecutionRole: every
    log group and every stream of the account) are replaced by explicit roles."""
    deployment = Deployment(transformed, **overrides)
    for function in FUNCTIONS:
        for action, resource in grants_of(deployment, function):
            assert resource != "*" and not resource.endswith(":*"), (function, action, resource)
            assert not action.endswith("*"), (function, action, resource)
    for name, role in deployment.resources("AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert re.fullmatch(r"<\w+>", arn), f"{name} attaches {arn}"


# ---------------------------------------------------------------------------------------------------------------
# Alarms and outputs
# ---------------------------------------------------------------------------------------------------------------

ALARMS = ("DeadLetterQueueAlarm", "IteratorAgeAlarm", "FunctionErrorsAlarm")


def test_alarms_watch_the_dlq_the_iterator_age_and_errors(transformed: dict[str, Any]) -> None:
    alarms = {name: alarm["Properties"] for name, alarm in Deployment(transformed, **DEMO).resources().items()}
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


@pytest.mark.parametrize("alarm", ALARMS)
def test_alarms_notify_the_optional_topic(transformed: dict[str, Any], alarm: str) -> None:
    topic = f"arn:aws:sns:{REGION}:111122223333:ops"
    notified = Deployment(transformed, **DEMO, AlarmTopicArn=topic).resources()[alarm]["Properties"]
    silent = Deployment(transformed, **DEMO).resources()[alarm]["Properties"]
    assert notified["AlarmActions"] == notified["OKActions"] == [topic]
    assert "AlarmActions" not in silent and "OKActions" not in silent


def test_outputs(transformed: dict[str, Any]) -> None:
    outputs = transformed["Outputs"]
    for name in (
        "StreamProcessorFunctionName",
        "StreamProcessorFunctionArn",
        "RedriveFunctionName",
        "BackfillFunctionName",
        "DeadLetterQueueUrl",
        "DemoTableName",
        "DemoTableStreamArn",
        "DeadLetterQueueAlarmName",
        "IteratorAgeAlarmName",
        "FunctionErrorsAlarmName",
    ):
        assert name in outputs, name
    assert outputs["StreamProcessorFunctionArn"]["Value"] == {"Fn::GetAtt": ["StreamProcessorFunction", "Arn"]}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "DeadLetterQueue"}
    assert outputs["DemoTableStreamArn"]["Condition"] == outputs["DemoTableName"]["Condition"] == "CreateDemoTable"
    for alarm in ALARMS:
        assert outputs[f"{alarm}Name"]["Value"] == {"Ref": alarm}


# ---------------------------------------------------------------------------------------------------------------
# Template and code agree on the configuration variables
# ---------------------------------------------------------------------------------------------------------------

DECLARED = {variable.name for variable in VARIABLES} | set(POWERTOOLS_VARIABLES)
REQUIRED = {variable.name for variable in VARIABLES if variable.required} | set(POWERTOOLS_VARIABLES)
# Set by the Lambda runtime or read by boto3 itself: not the template's business.
RUNTIME_PREFIXES = ("AWS_", "_", "LAMBDA_")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_template_sets_every_declared_variable_and_nothing_else(transformed: dict[str, Any], function: str) -> None:
    variables = set(transformed["Resources"][function]["Properties"]["Environment"]["Variables"])
    assert not variables - DECLARED, f"set by the template but read by no code: {variables - DECLARED}"
    assert not REQUIRED - variables, f"required but not set: {REQUIRED - variables}"
    # Also the optional ones, so that every setting is a parameter and sam local --env-vars can override it.
    assert variables == DECLARED


def test_code_reads_only_declared_variables() -> None:
    package = REPO / "functions" / "stream_processor"
    read = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = environment_name(node)
            if name:
                read.add(name)
    undeclared = {name for name in read - DECLARED if not name.startswith(RUNTIME_PREFIXES)}
    assert not undeclared, f"read by the code but not declared in config.VARIABLES: {undeclared}"


def environment_name(node: ast.AST) -> str | None:
    """The literal variable name of os.getenv("X"), os.environ.get("X") or os.environ["X"], else None."""

    def literal(expression: ast.AST | None) -> str | None:
        return expression.value if isinstance(expression, ast.Constant) and isinstance(expression.value, str) else None

    if isinstance(node, ast.Call) and node.args:
        function = node.func
        if isinstance(function, ast.Attribute) and function.attr == "getenv":
            return literal(node.args[0])
        if isinstance(function, ast.Attribute) and function.attr == "get" and _is_environ(function.value):
            return literal(node.args[0])
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return literal(node.slice)
    return None


def test_environment_reads_are_found() -> None:
    code = 'os.getenv("A"); os.environ.get("B", "x"); os.environ["C"]; environ.get("D"); settings.get("E"); f(name)'
    found = {environment_name(node) for node in ast.walk(ast.parse(code))} - {None}
    assert found == {"A", "B", "C", "D"}


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


@pytest.mark.parametrize("overrides", [DEMO, EXISTING])
def test_default_parameters_give_a_valid_configuration(transformed: dict[str, Any], overrides: dict[str, str]) -> None:
    settings = load_settings(Deployment(transformed, **overrides).environment("StreamProcessorFunction"))
    assert settings.cache_name == "dynamodb-cache"
    assert settings.ttl_attribute == "ExpiresAt"
    assert settings.dlq_url == "<DeadLetterQueue>"
    assert settings.momento.api_key_secret in ("<MomentoApiKeySecret>", SECRET_ARN)


@pytest.mark.parametrize("bound", ["MinValue", "MaxValue"])
def test_every_allowed_number_gives_a_valid_configuration(
    source: dict[str, Any], transformed: dict[str, Any], bound: str
) -> None:
    """The parameters' bounds are within what the code accepts (e.g. TOPIC_MAX_BYTES >= 256)."""
    configuration = {
        "DefaultTtlSeconds",
        "MaxTtlSeconds",
        "TopicMaxBytes",
        "MaxInFlight",
    }
    values = {
        name: str(source["Parameters"][name][bound]) for name in configuration if bound in source["Parameters"][name]
    }
    settings = load_settings(Deployment(transformed, **DEMO, **values).environment("StreamProcessorFunction"))
    assert settings.default_ttl_seconds <= settings.max_ttl_seconds


def test_local_env_vars_file_sets_only_template_variables_and_no_secret(transformed: dict[str, Any]) -> None:
    """sam local --env-vars silently ignores variables the template does not declare, so every one must be there."""
    local = json.loads((REPO / "events" / "env.json").read_text())
    assert set(local) == {"StreamProcessorFunction"}
    variables = local["StreamProcessorFunction"]
    declared = set(transformed["Resources"]["StreamProcessorFunction"]["Properties"]["Environment"]["Variables"])
    assert set(variables) <= declared, set(variables) - declared
    settings = load_settings(variables)
    assert settings.momento.is_local
    assert settings.momento.api_key is None and settings.momento.api_key_secret is None
