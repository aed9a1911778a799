"""The template's view of a function, resolved as `sam local invoke` would: intrinsics, conditions, overrides."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from local_pipeline.function_environment import TemplateError, function_config, load_template, read_env_vars_file
from stream_processor.config import VARIABLES

REPO = Path(__file__).resolve().parents[2]

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Cache: {Type: String, Default: my-cache}
  Stream: {Type: String, Default: ""}
  Secret: {Type: String, Default: ""}
  Ttl: {Type: Number, Default: 900}
Conditions:
  NoStream: !Equals [!Ref Stream, ""]
  HasSecret: !Not [!Equals [!Ref Secret, ""]]
  Both: !And [!Condition NoStream, !Or [!Condition HasSecret, !Equals [a, a]]]
Globals:
  Function:
    Timeout: 30
    MemorySize: !Ref Ttl
    Environment:
      Variables:
        CACHE_NAME: !Ref Cache
        TABLE: !If [NoStream, !Ref Table, !Select [1, !Split ["/", !Sub "${Stream}/"]]]
        SECRET: !If [HasSecret, !Ref Secret, !Ref AWS::NoValue]
        WHERE: !Sub "${AWS::Region}:${AWS::AccountId}:${Cache}:${!Literal}"
        JOINED: !Join ["-", [!Ref Cache, !If [Both, first, second]]]
        QUEUE_ARN: !GetAtt Queue.Arn
        PLAIN: 7
        FLAG: true
Resources:
  Table: {Type: AWS::DynamoDB::Table}
  Queue: {Type: AWS::SQS::Queue}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Timeout: 10
      Environment:
        Variables:
          TTL: !Ref Ttl
"""


@pytest.fixture
def template(tmp_path: Path) -> dict:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return load_template(path)


def test_intrinsics_resolve_with_parameter_defaults_and_conditions(template):
    config = function_config(template, "Fn", region="eu-west-1")

    assert (config.handler, config.timeout_seconds, config.memory_size_mb) == ("app.handler", 10, 900)
    assert config.environment == {
        "CACHE_NAME": "my-cache",
        "TABLE": "Table",  # a resource's Ref is its logical id, as in sam local
        "WHERE": "eu-west-1:123456789012:my-cache:${Literal}",
        "JOINED": "my-cache-first",
        "QUEUE_ARN": "",  # only AWS knows it
        "PLAIN": "7",
        "FLAG": "true",
        "TTL": "900",
    }
    assert "SECRET" not in config.environment  # AWS::NoValue
    assert config.unresolved == ["QUEUE_ARN"]


def test_the_other_branch_of_a_condition(template):
    template["Parameters"]["Stream"]["Default"] = "arn:aws:dynamodb:us-east-1:1:table/Orders/stream/x"
    template["Parameters"]["Secret"]["Default"] = "arn:secret"

    environment = function_config(template, "Fn").environment

    assert environment["TABLE"] == "Orders"
    assert environment["SECRET"] == "arn:secret"


def test_an_unknown_function_or_a_file_that_is_not_a_template_is_a_clear_error(template, tmp_path):
    with pytest.raises(TemplateError, match="no function 'Nope'"):
        function_config(template, "Nope")
    (tmp_path / "bad.yaml").write_text("just: text\n")
    with pytest.raises(TemplateError, match="not a SAM template"):
        load_template(tmp_path / "bad.yaml")
    with pytest.raises(TemplateError, match="cannot read the template"):
        load_template(tmp_path / "missing.yaml")


def test_the_projects_template_gives_the_stream_processor_every_variable_it_reads():
    template = load_template(REPO / "template.yaml")
    parameters = template["Parameters"]

    config = function_config(template, "StreamProcessorFunction")

    assert config.handler == "stream_processor.app.handler"
    assert config.unresolved == []
    assert config.environment["CACHE_NAME"] == parameters["CacheName"]["Default"]
    assert config.environment["TOPIC_NAME"] == parameters["TopicName"]["Default"]
    assert config.timeout_seconds == int(parameters["Timeout"]["Default"])
    assert {variable.name for variable in VARIABLES} - set(config.environment) <= {"MOMENTO_API_KEY_SECRET"}


def env_file(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(document))
    return path


def test_an_env_vars_file_applies_parameters_then_the_functions_own_values(tmp_path):
    path = env_file(
        tmp_path,
        {"Parameters": {"A": "all", "B": "all"}, "Fn": {"B": "mine", "N": 5, "T": False}, "Other": {"A": "x"}},
    )

    assert read_env_vars_file(path, "Fn") == {"A": "all", "B": "mine", "N": "5", "T": "false"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps(["Fn"]), "must be an object like"),
        (json.dumps({"Fn": "A=1"}), "must be an object like"),
        (json.dumps({"Fn": {"A": {"nested": 1}}}), "Fn.A must be a string, number or boolean"),
    ],
)
def test_a_malformed_env_vars_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "env.json"
    path.write_text(textwrap.dedent(content))

    with pytest.raises(TemplateError, match=message):
        read_env_vars_file(path, "Fn")
