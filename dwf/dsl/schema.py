"""A JSON Schema of the workflow language, for editors (yaml-language-server) and tooling.

It is generated from the registered step types' config models, so step types added by installed
extensions are included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from dwf.dsl.model import InputSpec

if TYPE_CHECKING:
    from dwf.extensions import Registry

__all__ = ["language_schema"]

STEP_REF = "#/$defs/Step"


class _StepsAsRefs(GenerateJsonSchema):
    """Nested step lists (opaque StepDef objects in the models) become references to Step."""

    def is_instance_schema(self, schema: core_schema.IsInstanceSchema) -> JsonSchemaValue:
        return {_MARK: True}

    def handle_invalid_for_json_schema(
        self, schema: core_schema.CoreSchema, error_info: str
    ) -> JsonSchemaValue:
        return {_MARK: True}


_MARK = "x-dwf-step"


def _refs(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(_MARK):
            return {"$ref": STEP_REF}
        return {k: _refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_refs(v) for v in value]
    return value


def _step_schema(type_name: str, model: type[Any], description: str) -> dict[str, Any]:
    schema = _refs(
        model.model_json_schema(schema_generator=_StepsAsRefs, ref_template="#/$defs/{model}")
    )
    defs = schema.pop("$defs", {})
    properties = dict(schema.get("properties", {}))
    properties.update(
        {
            "id": {"type": "string", "description": "Unique step id"},
            "type": {"const": type_name, "description": description},
            "next": {"type": ["string", "null"], "description": "The step to run next"},
            "on_error": {
                "type": ["string", "null"],
                "description": "The step to run if this one fails",
            },
        }
    )
    out: dict[str, Any] = {
        "type": "object",
        "title": f"{type_name} step",
        "properties": properties,
        "required": ["id", "type", *schema.get("required", [])],
        "additionalProperties": False,
    }
    if description:
        out["description"] = description
    return {"schema": out, "defs": defs}


def language_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a workflow document for ``registry``."""
    defs: dict[str, Any] = {}
    variants = []
    for name, step_type in sorted(registry.step_types.items()):
        generated = _step_schema(name, step_type.config_model, step_type.description)
        defs.update(generated["defs"])
        key = f"step_{name}"
        defs[key] = generated["schema"]
        variants.append(
            {"if": {"properties": {"type": {"const": name}}}, "then": {"$ref": f"#/$defs/{key}"}}
        )
    defs["Step"] = {
        "type": "object",
        "required": ["id", "type"],
        "properties": {"type": {"enum": sorted(registry.step_types)}},
        "allOf": variants,
    }
    input_schema = InputSpec.model_json_schema()
    properties: dict[str, Any] = {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "version": {"type": ["string", "number", "null"]},
        "description": {"type": ["string", "null"]},
        "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "inputs": {
            "type": ["object", "null"],
            "additionalProperties": {"anyOf": [{"$ref": "#/$defs/Input"}, {"type": "null"}]},
        },
        "steps": {"type": "array", "items": {"$ref": STEP_REF}},
    }
    for key, spec in registry.top_level_keys.items():
        generated = TypeAdapter(spec.model).json_schema(ref_template="#/$defs/{model}")
        defs.update(generated.pop("$defs", {}))
        if spec.description:
            generated["description"] = spec.description
        properties[key] = generated
    defs["Input"] = input_schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dwf.dev/schema/workflow.json",
        "title": "dwf workflow",
        "type": "object",
        "required": ["id", "name", "steps"],
        "properties": properties,
        "additionalProperties": False,
        "$defs": defs,
    }
