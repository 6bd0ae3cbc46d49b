"""Tools that workflows declare in a top-level ``tools:`` section.

The section belongs to the AI extension (``dwf_ai``), which parses it; the MCP server only reads
``workflow.extensions["tools"]``. Any extension that registers a ``tools`` key plugs in, as long
as each entry carries ``id``, ``description``, ``parameters``, ``service`` and ``method`` (or
``method_name``, the original gem's attribute). ``parameters`` is the original list of
``{name, type, required, description}`` or a ready JSON Schema object. Entries may be mappings or
objects, in a list or in a mapping keyed by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import dwf

if TYPE_CHECKING:
    from dwf import WorkflowDefinition

__all__ = ["DeclaredTool", "declared_tools"]


class _Parameter(BaseModel):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    name: str
    type: str | None = "string"
    required: bool = True
    description: str | None = None


class DeclaredTool(BaseModel):
    """One entry of a workflow's ``tools:`` section, as the MCP server needs it.

    ``parameters`` is either the original list of ``{name, type, required, description}`` or a
    ready JSON Schema object; an entry object with a ``json_schema()`` method (as the AI
    extension's definitions have) supplies the schema itself. ``method`` may also be given as
    ``method_name``. ``needs_approval`` tools are not exposed: a direct MCP call would skip the
    approval they require.
    """

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: str
    description: str = ""
    parameters: list[_Parameter] | dict[str, Any] = Field(default_factory=list)
    service: str
    method: str
    needs_approval: bool = False
    declared_schema: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            if "method" not in data and "method_name" in data:
                return {**data, "method": data["method_name"]}
            return data
        values = {
            key: getattr(data, key, None)
            for key in ("id", "description", "parameters", "service", "method", "needs_approval")
        }
        values["method"] = values["method"] or getattr(data, "method_name", None)
        schema = getattr(data, "json_schema", None)
        if callable(schema):
            values["declared_schema"] = schema()
        return {k: v for k, v in values.items() if v is not None}

    def input_schema(self) -> dict[str, Any]:
        if self.declared_schema is not None:
            return dict(self.declared_schema)
        if isinstance(self.parameters, dict):
            schema = dict(self.parameters)
            schema.setdefault("type", "object")
            return schema
        properties: dict[str, Any] = {}
        for param in self.parameters:
            prop: dict[str, Any] = {}
            if param.type and param.type != "any":
                prop["type"] = param.type
            if param.description:
                prop["description"] = param.description
            properties[param.name] = prop
        required = [p.name for p in self.parameters if p.required]
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema


def declared_tools(workflow: WorkflowDefinition) -> list[DeclaredTool]:
    """The tools a workflow declares in ``tools:`` (``workflow.extensions["tools"]``), whatever
    extension parsed them: a list of definitions, or a mapping of id to definition. Entries may
    be dicts or objects with the same attributes."""
    raw = workflow.extensions.get("tools")
    if raw is None:
        return []
    entries: Iterable[Any]
    if isinstance(raw, Mapping):
        entries = [_with_id(key, value) for key, value in raw.items()]
    elif isinstance(raw, Sequence) and not isinstance(raw, str | bytes):
        entries = raw
    else:
        raise dwf.ConfigurationError(
            f"workflow '{workflow.id}': its 'tools' section is a {type(raw).__name__}; expected "
            "a list of tool definitions"
        )
    tools = []
    for entry in entries:
        try:
            tools.append(DeclaredTool.model_validate(entry))
        except ValidationError as exc:
            raise dwf.ConfigurationError(
                f"workflow '{workflow.id}': a tool in its 'tools' section cannot be exposed over "
                f"MCP: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
            ) from exc
    return tools


def _with_id(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return {"id": key, **value}
    return value
