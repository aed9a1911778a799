"""A function's configuration as the SAM template gives it: handler, timeout, memory and environment variables.

What ``sam local invoke`` does before it starts a container, without the SAM CLI: read ``template.yaml`` (with its
CloudFormation tags), merge ``Globals.Function`` with the function's own properties, and resolve the intrinsic
functions with the parameters' defaults: ``Ref`` (parameters, pseudo parameters, resources: their logical id, as
sam local), ``Fn::If`` with the template's conditions, ``Fn::FindInMap``, ``Fn::Sub``, ``Fn::Select``, ``Fn::Split``,
``Fn::Join``;
``AWS::NoValue`` leaves the variable out. Anything else (``Fn::GetAtt``, ``Fn::ImportValue``, ...) cannot be known
locally and becomes empty, as in sam local, and is named in ``FunctionConfig.unresolved``.

Overrides follow ``sam local invoke --env-vars``: a JSON file ``{"Parameters": {...}, "<LogicalId>": {...}}`` where
the function's own object wins over ``Parameters``, and both win over the shell's environment, which wins over the
template. Only variables the template declares can be overridden.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from local_pipeline.template_intrinsics import NO_VALUE, TemplateError, TemplateResolver, Unresolved, as_text

__all__ = ["FunctionConfig", "TemplateError", "function_config", "load_template", "read_env_vars_file"]


@dataclass(frozen=True)
class FunctionConfig:
    """What the template says about one function, resolved."""

    logical_id: str
    handler: str
    timeout_seconds: int
    memory_size_mb: int
    environment: dict[str, str]  # every declared variable, resolved (variables that resolve to AWS::NoValue left out)
    unresolved: list[str] = field(default_factory=list)  # variables whose value only AWS knows (empty here)


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (``!Ref X`` is ``{"Ref": "X"}``, ``!If [...]`` is ``{"Fn::If": ...}``)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    """``!Name value`` as the long form: ``{"Ref": ...}``, ``{"Condition": ...}`` or ``{"Fn::Name": ...}``."""
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    try:
        document = yaml.load(
            path.read_text(encoding="utf-8"), Loader=_TemplateLoader
        )  # a SafeLoader with CloudFormation's tags
    except OSError as error:
        raise TemplateError(f"cannot read the template {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise TemplateError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a SAM template (no Resources)")
    return document


def function_config(template: Mapping[str, Any], logical_id: str, region: str = "us-east-1") -> FunctionConfig:
    """The function's handler, timeout, memory and environment, resolved with the parameters' defaults."""
    resource = template["Resources"].get(logical_id)
    if not isinstance(resource, dict) or resource.get("Type") not in (
        "AWS::Serverless::Function",
        "AWS::Lambda::Function",
    ):
        raise TemplateError(f"the template has no function {logical_id!r}")
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    properties = resource.get("Properties") or {}
    resolver = TemplateResolver(template, pseudo={"AWS::Region": region})
    variables = {
        **((globals_.get("Environment") or {}).get("Variables") or {}),
        **((properties.get("Environment") or {}).get("Variables") or {}),
    }
    environment: dict[str, str] = {}
    unresolved: list[str] = []
    for name, value in variables.items():
        try:
            resolved = resolver.resolve(value)
        except Unresolved:
            environment[name] = ""
            unresolved.append(name)
            continue
        if resolved is not NO_VALUE:
            environment[name] = as_text(resolved)

    def setting(name: str, default: Any) -> Any:
        value = properties.get(name, globals_.get(name, default))
        try:
            return resolver.resolve(value)
        except Unresolved:
            return default

    return FunctionConfig(
        logical_id=logical_id,
        handler=str(setting("Handler", "")),
        timeout_seconds=int(setting("Timeout", 3)),
        memory_size_mb=int(setting("MemorySize", 128)),
        environment=environment,
        unresolved=unresolved,
    )


def read_env_vars_file(path: Path, logical_id: str) -> dict[str, str]:
    """The overrides a ``--env-vars`` file gives the function: its ``Parameters``, then its own object on top."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise TemplateError(f"cannot read the environment file {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise TemplateError(f"{path} is not valid JSON: {error}") from None
    shape = f'an object like {{"Parameters": {{"NAME": "value"}}, "{logical_id}": {{"NAME": "value"}}}}'
    if not isinstance(document, dict) or not all(isinstance(value, dict) for value in document.values()):
        raise TemplateError(f"{path} must be {shape}")
    overrides: dict[str, str] = {}
    for section in ("Parameters", logical_id):
        for name, value in (document.get(section) or {}).items():
            if isinstance(value, dict | list):
                raise TemplateError(f"{path}: {section}.{name} must be a string, number or boolean")
            overrides[name] = as_text(value)
    return overrides
