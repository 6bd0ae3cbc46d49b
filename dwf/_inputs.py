"""Checking a run's input against the workflow's declared ``inputs``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dwf._frames import to_json_safe
from dwf.errors import InputValidationError
from dwf.extensions import did_you_mean

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition

__all__ = ["validate_input"]


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "any": lambda v: True,
}


def validate_input(workflow: WorkflowDefinition, input: Mapping[str, Any] | None) -> dict[str, Any]:
    """Apply defaults, then check required inputs and types. Raises
    :class:`InputValidationError` listing every problem."""
    from dwf.expr import type_name

    if input is not None and not isinstance(input, Mapping):
        raise InputValidationError(
            f"the input of workflow '{workflow.id}' must be a JSON object, got {type_name(input)}"
        )
    values = dict(to_json_safe(dict(input or {}), "the run input"))
    problems: list[str] = []
    for name, spec in workflow.inputs.items():
        if values.get(name) is None and spec.default is not None:
            values[name] = spec.default
        value = values.get(name)
        if value is None:
            if spec.required:
                problems.append(f"missing required input '{name}'")
            continue
        if not _TYPE_CHECKS[spec.type](value):
            problems.append(
                f"input '{name}' must be {spec.type}, "
                f"got {type_name(value)} {json.dumps(value)[:60]}"
            )
    if workflow.inputs:
        for name in values:
            if name not in workflow.inputs:
                problems.append(
                    f"unknown input '{name}'{did_you_mean(name, workflow.inputs)}; declared "
                    f"inputs: {', '.join(workflow.inputs)}"
                )
    if problems:
        raise InputValidationError(
            f"invalid input for workflow '{workflow.id}': " + "; ".join(problems),
            workflow_id=workflow.id,
        )
    return values
