"""CloudFormation intrinsic functions of a SAM template, resolved for one deployment's parameter values.

``make invoke`` needs a function's environment as ``sam local invoke`` computes it, and the template's tests need the
resources a deployment creates, without an AWS account. samtranslator's resolver (a SAM CLI dependency) is not in
the local pipeline's small install and leaves conditions unevaluated, so this is the project's own: ``Ref``
(parameters, pseudo parameters, resources), ``Fn::If`` and the template's conditions (``Fn::Equals``, ``Fn::Not``,
``Fn::And``, ``Fn::Or``, ``Fn::Contains``), ``Fn::FindInMap``, ``Fn::Sub``, ``Fn::Select``, ``Fn::Split``,
``Fn::Join``, and ``Fn::GetAtt`` when the caller says what it stands for. ``AWS::NoValue`` resolves to ``NO_VALUE``
(left out of lists and maps). What only AWS knows raises ``Unresolved``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["NO_VALUE", "PSEUDO_PARAMETERS", "TemplateError", "TemplateResolver", "Unresolved", "as_text"]

PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::StackName": "local",
    "AWS::URLSuffix": "amazonaws.com",
}
_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]*)\}")
_CONDITIONS = frozenset({"Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Fn::Contains", "Condition"})


class TemplateError(ValueError):
    """The template or an override file cannot be read as one; the message says which file and why."""


class Unresolved(Exception):
    """An intrinsic function whose value only AWS knows."""


class _NoValue:
    """``AWS::NoValue``: the property is left out."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE = _NoValue()


def as_text(value: Any) -> str:
    """A resolved value as CloudFormation passes it to a string property (booleans as ``true``/``false``)."""
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


class TemplateResolver:
    """Resolves a template's intrinsics with its parameters' defaults, ``parameters`` overriding them.

    ``resource_ref`` gives a resource's ``Ref`` (default: its logical id, as sam local); ``get_att`` a resource
    attribute's value (default: unresolved).
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        parameters: Mapping[str, Any] | None = None,
        pseudo: Mapping[str, str] | None = None,
        resource_ref: Callable[[str], Any] = lambda name: name,
        get_att: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.parameters = {
            name: "" if spec.get("Default") is None else spec["Default"]
            for name, spec in (template.get("Parameters") or {}).items()
            if isinstance(spec, dict)
        }
        self.parameters.update(parameters or {})
        self.pseudo = {**PSEUDO_PARAMETERS, **(pseudo or {})}
        self.conditions = template.get("Conditions") or {}
        self.mappings = template.get("Mappings") or {}
        self.resources = set(template.get("Resources") or {})
        self.resource_ref = resource_ref
        self.get_att = get_att
        self._evaluated: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" or function.startswith("Fn::") or function == "Condition":
                return self._intrinsic(function, argument, value)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _intrinsic(self, function: str, argument: Any, value: Mapping[str, Any]) -> Any:
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::If":
            condition, if_true, if_false = argument
            return self.resolve(if_true if self.condition(condition) else if_false)
        if function == "Fn::Sub":
            return self.sub(argument)
        if function == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(as_text(item) for item in self.resolve(items))
        if function == "Fn::Split":
            delimiter, text = argument
            return as_text(self.resolve(text)).split(str(delimiter))
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if function == "Fn::FindInMap":
            mapping, first, second = (as_text(self.resolve(part)) for part in argument[:3])
            try:
                return self.mappings[mapping][first][second]
            except (KeyError, TypeError):
                raise Unresolved(f"Fn::FindInMap {mapping}.{first}.{second}") from None
        if function == "Fn::GetAtt":
            name, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self.attribute(name, attribute)
        if function in _CONDITIONS:
            return self.truth(value)
        raise Unresolved(function)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.resources:
            return self.resource_ref(name)
        raise Unresolved(f"Ref {name}")

    def attribute(self, name: str, attribute: str) -> Any:
        if self.get_att is None:
            raise Unresolved(f"Fn::GetAtt {name}.{attribute}")
        return self.get_att(name, attribute)

    def sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])

        def replace(match: re.Match[str]) -> str:
            literal, name = match.groups()
            if literal:
                return "${" + name + "}"
            if name in variables:
                return as_text(self.resolve(variables[name]))
            if "." in name:
                return as_text(self.attribute(*name.split(".", 1)))
            return as_text(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def condition(self, name: str) -> bool:
        if name not in self._evaluated:
            if name not in self.conditions:
                raise TemplateError(f"the template has no condition {name!r}")
            self._evaluated[name] = self.truth(self.conditions[name])
        return self._evaluated[name]

    def truth(self, value: Mapping[str, Any]) -> bool:
        ((function, argument),) = value.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            left, right = (as_text(self.resolve(side)) for side in argument)
            return left == right
        if function == "Fn::Not":
            return not self.truth(argument[0])
        if function == "Fn::And":
            return all(self.truth(item) for item in argument)
        if function == "Fn::Or":
            return any(self.truth(item) for item in argument)
        if function == "Fn::Contains":  # Rules only: whether the value is one of the list's strings
            return as_text(self.resolve(argument[1])) in [as_text(item) for item in self.resolve(argument[0])]
        raise TemplateError(f"unsupported condition function {function}")
