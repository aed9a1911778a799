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

from local_pipeline.template_intrinsics import TemplateResolver

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


class Deployment:
    """One deployment of a template: parameter values (defaults plus overrides) and the intrinsics resolved with them
    (``local_pipeline.template_intrinsics``, the resolver ``make invoke`` uses).

    A resource's Ref resolves to "<Name>" and Fn::GetAtt to "<Name.Attribute>", which is enough to tell which
    resource a value points at.
    """

    def __init__(self, template: dict[str, Any], **overrides: str) -> None:
        self.template = template
        values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
        unknown = set(overrides) - set(values)
        assert not unknown, f"no such parameters: {unknown}"
        self.values = values | overrides
        self.resolver = TemplateResolver(
            template,
            parameters=self.values,
            pseudo={"AWS::Region": REGION, "AWS::StackName": "stack"},
            resource_ref=lambda name: f"<{name}>",
            get_att=lambda name, attribute: f"<{name}.{attribute}>",
        )

    def condition(self, name: str) -> bool:
        return self.resolver.condition(name)

    def truth(self, node: dict[str, Any]) -> bool:
        return self.resolver.truth(node)

    def resolve(self, node: Any) -> Any:
        return self.resolver.resolve(node)

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
