"""The SAM template: it lints, broken copies are rejected, it agrees with the code, and its safety properties hold.

Structural checks run on the TRANSFORMED template (samtranslator, offline, as cfn-lint does), resolved for concrete
deployments by tests/sam_template.py: the defaults (a demo table and a secret made by the stack), and an existing
stream with an existing KMS-encrypted secret. Parameters, guided deploy and guards: test_template_deploy.py; alarms:
test_template_alarms.py.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from stream_processor.config import POWERTOOLS_VARIABLES, VARIABLES, load_settings
from tests.sam_template import (
    DEMO,
    EXISTING,
    KMS_KEY_ARN,
    REGION,
    REPO,
    SECRET_ARN,
    STREAM_ARN,
    TABLE_ARN,
    TEMPLATE,
    Deployment,
    source_template,
    transformed_template,
)

SAM = Path(sys.executable).parent / "sam"

FUNCTIONS = {
    "StreamProcessorFunction": "stream_processor.app.handler",
    "RedriveFunction": "stream_processor.redrive.handler",
    "BackfillFunction": "stream_processor.backfill.handler",
}


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
# The template as written and as transformed
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return source_template()


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return transformed_template()


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


def test_memory_and_timeouts_have_sensible_defaults(source: dict[str, Any], transformed: dict[str, Any]) -> None:
    parameters = source["Parameters"]
    assert source["Globals"]["Function"]["MemorySize"] == {"Ref": "MemorySize"}
    assert source["Globals"]["Function"]["Timeout"] == {"Ref": "Timeout"}
    assert 128 <= parameters["MemorySize"]["Default"] <= 2048
    assert 10 <= parameters["Timeout"]["Default"] <= 300
    resources = Deployment(transformed).resources()
    # The on-demand jobs get Lambda's maximum; the DLQ hides a message from other readers as long as the redrive runs.
    for function in ("RedriveFunction", "BackfillFunction"):
        assert resources[function]["Properties"]["Timeout"] == 900
    assert resources["DeadLetterQueue"]["Properties"]["VisibilityTimeout"] == 900


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


# The text the stack's own secret holds until the user puts the key in. The function treats exactly this text, and an
# empty value, as "no key yet" and stops at start-up naming the secret (stream_processor's configuration).
PLACEHOLDER_KEY = "PUT-YOUR-MOMENTO-API-KEY-HERE"


def test_no_parameter_can_carry_the_key(source: dict[str, Any], transformed: dict[str, Any]) -> None:
    """The key reaches AWS only through `aws secretsmanager put-secret-value`: never a parameter, so never in the
    stack's parameters, a change set, samconfig.toml or an environment variable."""
    assert not [name for name, parameter in source["Parameters"].items() if parameter.get("NoEcho")]
    secret = transformed["Resources"]["MomentoApiKeySecret"]
    assert secret["Condition"] == "CreateApiKeySecret"
    assert secret["Properties"]["SecretString"] == PLACEHOLDER_KEY


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


def test_the_stack_makes_a_secret_only_without_an_existing_one(transformed: dict[str, Any]) -> None:
    assert "MomentoApiKeySecret" in Deployment(transformed, **DEMO).resources()
    assert "MomentoApiKeySecret" not in Deployment(transformed, **EXISTING).resources()


def test_outputs_give_the_command_that_puts_the_key_in(transformed: dict[str, Any]) -> None:
    outputs = transformed["Outputs"]
    command = outputs["PutMomentoApiKeyCommand"]
    assert command["Condition"] == "CreateApiKeySecret"  # an existing secret already holds the key
    assert Deployment(transformed, **DEMO).resolve(command["Value"]) == (
        f"aws secretsmanager put-secret-value --region {REGION} --secret-id <MomentoApiKeySecret>"
        " --secret-string '<your Momento API key>'"
    )
    for overrides, secret in ((DEMO, "<MomentoApiKeySecret>"), (EXISTING, SECRET_ARN)):
        assert Deployment(transformed, **overrides).resolve(outputs["MomentoApiKeySecretArn"]["Value"]) == secret


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
# Outputs (the alarms': test_template_alarms.py)
# ---------------------------------------------------------------------------------------------------------------


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
        "MomentoApiKeySecretArn",
    ):
        assert name in outputs, name
    assert outputs["StreamProcessorFunctionArn"]["Value"] == {"Fn::GetAtt": ["StreamProcessorFunction", "Arn"]}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "DeadLetterQueue"}
    assert outputs["DemoTableStreamArn"]["Condition"] == outputs["DemoTableName"]["Condition"] == "CreateDemoTable"


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
    """The bounds of every number parameter the functions read are within what the code accepts (e.g.
    DefaultTtlSeconds at most the fixed MAX_TTL_SECONDS)."""
    variables = source["Globals"]["Function"]["Environment"]["Variables"]
    read = {value["Ref"] for value in variables.values() if isinstance(value, dict) and "Ref" in value}
    numbers = {name for name in read if source["Parameters"].get(name, {}).get("Type") == "Number"}
    assert {"DefaultTtlSeconds", "MaxInFlight"} <= numbers
    values = {name: str(source["Parameters"][name][bound]) for name in numbers if bound in source["Parameters"][name]}
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
