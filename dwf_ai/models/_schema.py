"""Structured output helpers shared by the providers.

Both providers want an object at the root of a structured-output schema (OpenAI's
``response_format``, Anthropic's tool ``input_schema``). Any other root is wrapped as
``{"value": <schema>}`` on the way out and unwrapped on the way back, so the answer the agent sees
always matches the schema it asked for.
"""

from __future__ import annotations

import json
import re
from typing import Any

WRAPPER_KEY = "value"

# Keywords OpenAI's strict mode rejects; a schema using one is sent with ``strict: false``.
_NOT_STRICT = frozenset(
    {
        "allOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "patternProperties",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
    }
)


def is_object_schema(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "object" or (kind is None and "properties" in schema)


def prepare(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema to send and whether it was wrapped."""
    if is_object_schema(schema):
        return schema, False
    wrapped = {
        "type": "object",
        "properties": {WRAPPER_KEY: schema},
        "required": [WRAPPER_KEY],
        "additionalProperties": False,
    }
    return wrapped, True


def unwrap(text: str | None, wrapped: bool) -> str | None:
    """The answer without the ``{"value": ...}`` wrapper; invalid JSON is returned untouched so
    the caller's validation reports it."""
    if not wrapped or text is None:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(value, dict) and WRAPPER_KEY in value:
        return json.dumps(value[WRAPPER_KEY], ensure_ascii=False)
    return text


def is_strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode accepts ``schema``: every object closes its properties
    (``additionalProperties: false``) and requires all of them, and no unsupported keyword."""
    if isinstance(schema, list):
        return all(is_strict_compatible(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if _NOT_STRICT & schema.keys():
        return False
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if not isinstance(properties, dict) or set(schema.get("required", [])) != set(properties):
            return False
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            if not all(is_strict_compatible(v) for v in value.values()):
                return False
        elif key in ("items", "anyOf", "prefixItems") and not is_strict_compatible(value):
            return False
    return True


def schema_name(schema: dict[str, Any], default: str = "final_answer") -> str:
    """A name for the schema as the providers require it: ``[a-zA-Z0-9_-]{1,64}``."""
    title = schema.get("title")
    if not isinstance(title, str) or not title.strip():
        return default
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", title.strip()).strip("_")[:64]
    return name or default


def object_or_empty(parameters: dict[str, Any]) -> dict[str, Any]:
    """A tool's parameter schema; an empty one becomes "an object with no properties"."""
    return parameters if parameters else {"type": "object", "properties": {}}
