"""The SAM template as CloudFormation sees it, offline: transformed by samtranslator (as cfn-lint does), resolved for
one deployment's parameter values, and checked the way CloudFormation checks parameters before it creates anything.

`Deployment` evaluates the intrinsic functions the template uses for concrete parameter values; `refusals` applies
CloudFormation's parameter constraints and the template's Rules to those values, as `sam deploy` meets them when it
creates the change set.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from unittest import mock

from samcli.yamlhelper import yaml_parse
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
REGION = "us-east-1"

# An existing stream, table, secret and key, as a user would pass them.
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:111122223333:table/orders/stream/2026-01-01T00:00:00.000"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:111122223333:table/orders"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:111122223333:secret:momento-api-key-AbCdEf"
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# The two ways to deploy: an existing stream with an existing KMS-encrypted secret, and the defaults (a demo table and
# a secret made by the stack).
EXISTING = {
    "SourceStreamArn": STREAM_ARN,
    "MomentoApiKeySecretArn": SECRET_ARN,
    "MomentoApiKeySecretKmsKeyArn": KMS_KEY_ARN,
}
DEMO: dict[str, str] = {}


@functools.cache
def _source() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())


def source_template() -> dict[str, Any]:
    """template.yaml as written."""
    return copy.deepcopy(_source())


@functools.cache
def _transformed() -> dict[str, Any]:
    sam_template = source_template()
    sam_template["Globals"]["Function"]["CodeUri"] = "s3://bucket/key"  # as cfn-lint does for a local CodeUri
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": REGION}):
        return Translator(managed_policy_map={}, sam_parser=Parser()).translate(sam_template, parameter_values={})


def transformed_template() -> dict[str, Any]:
    """The CloudFormation template that SAM makes of ours."""
    return copy.deepcopy(_transformed())


NO_VALUE = object()


class Deployment:
    """One deployment of a template: parameter values (defaults plus overrides) and the intrinsics resolved with them.

    A resource's Ref resolves to "<Name>" and Fn::GetAtt to "<Name.Attribute>", which is enough to tell which
    resource a value points at.
    """

    def __init__(self, template: dict[str, Any], **overrides: str) -> None:
        self.template = template
        self.values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
        unknown = set(overrides) - set(self.values)
        assert not unknown, f"no such parameters: {unknown}"
        self.values |= overrides
        self.parameters = self.values | {
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
        if function == "Fn::Contains":  # Rules only: is the value one of the list's strings
            return self.resolve(argument[1]) in self.resolve(argument[0])
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
            if key == "Fn::FindInMap":
                mapping, top, second = map(self.resolve, argument)
                return self.template["Mappings"][mapping][top][second]
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
        """The function's environment variables; CloudFormation passes a number given to this map as its text."""
        variables = self.resources()[function]["Properties"]["Environment"]["Variables"]
        return {name: value if isinstance(value, str) else str(value) for name, value in variables.items()}


# ---------------------------------------------------------------------------------------------------------------
# What CloudFormation refuses when `sam deploy` creates the change set
# ---------------------------------------------------------------------------------------------------------------

# CloudFormation's Number type: an integer or a float.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def refusals(template: dict[str, Any], values: Mapping[str, str]) -> list[str]:
    """The messages CloudFormation answers for these parameter values, none if it accepts them.

    Parameters: Number type, MinValue/MaxValue (Number), MinLength/MaxLength and AllowedPattern (String; the pattern
    must match the whole value), AllowedValues (both), each with its ConstraintDescription. Then every rule whose
    RuleCondition holds: each assertion that does not hold gives its AssertDescription. Parameters left out take
    their Default.
    """
    deployment = Deployment(template, **values)
    messages = [
        f"{name}: {message}"
        for name, parameter in template["Parameters"].items()
        for message in _parameter_refusals(parameter, deployment.values[name])
    ]
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not deployment.truth(rule["RuleCondition"]):
            continue
        messages += [a["AssertDescription"] for a in rule["Assertions"] if not deployment.truth(a["Assert"])]
    return messages


def _parameter_refusals(parameter: dict[str, Any], value: str) -> list[str]:
    broken = []
    if parameter["Type"] == "Number":
        if not _NUMBER.fullmatch(value):
            broken.append("not a number")
        else:
            number = _decimal(value)
            if "MinValue" in parameter and number < _decimal(parameter["MinValue"]):
                broken.append("below MinValue")
            if "MaxValue" in parameter and number > _decimal(parameter["MaxValue"]):
                broken.append("above MaxValue")
    elif parameter["Type"] == "String":
        if len(value) < int(parameter.get("MinLength", 0)):
            broken.append("shorter than MinLength")
        if "MaxLength" in parameter and len(value) > int(parameter["MaxLength"]):
            broken.append("longer than MaxLength")
        if "AllowedPattern" in parameter and not re.fullmatch(parameter["AllowedPattern"], value):
            broken.append("does not match AllowedPattern")
    else:
        raise AssertionError(f"no checks written for parameters of type {parameter['Type']}")
    if "AllowedValues" in parameter and value not in [str(allowed) for allowed in parameter["AllowedValues"]]:
        broken.append("not one of AllowedValues")
    if broken:
        return [parameter.get("ConstraintDescription", "; ".join(broken))]
    return []


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as error:
        raise AssertionError(f"not a number: {value!r}") from error
