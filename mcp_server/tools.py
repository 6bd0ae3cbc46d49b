"""The tools the server exposes, as data: names, descriptions, JSON Schemas, argument checks.

Three kinds of tools:

* ``run_<workflow id>``: one per served workflow (the prefix can be changed); its input schema is
  the workflow's ``inputs``;
* the companion tools ``get_execution``, ``resume_execution``, ``cancel_execution`` and
  ``list_executions``, which manage executions after ``run_*`` returned;
* tools that workflows declare in a top-level ``tools:`` section (see :mod:`.declared`).

What a tool *does* lives in :mod:`mcp_server.handlers`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import jsonschema
import mcp_types as types

import dwf
from mcp_server.declared import DeclaredTool, declared_tools

if TYPE_CHECKING:
    from dwf import WorkflowDefinition

__all__ = [
    "COMPANION_TOOLS",
    "RESULT_SCHEMA",
    "ArgumentError",
    "ToolSpec",
    "build_tools",
    "tool_name",
]

logger = logging.getLogger("dwf.mcp")

ToolKind = Literal["workflow", "companion", "declared"]

_NAME_OK = re.compile(r"[^A-Za-z0-9._-]")
STATUSES = ["completed", "halted", "failed", "cancelled", "running", "pending"]
#: "Any JSON value", spelled so that clients mapping schemas to one-type dialects accept it.
ANY_JSON: dict[str, Any] = {
    "anyOf": [{"type": t} for t in ("object", "array", "string", "number", "boolean", "null")]
}
_OBJECT_OR_NULL: dict[str, Any] = {"anyOf": [{"type": "object"}, {"type": "null"}]}

#: The structured content of every tool that reports on one execution.
RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "execution_id": {"type": "string", "description": "The execution's id"},
        "status": {"type": "string", "enum": STATUSES},
        "output": {**ANY_JSON, "description": "The workflow's result, once completed"},
        "halt": {
            **_OBJECT_OR_NULL,
            "description": "When halted: the prompt and the data a person needs to decide",
        },
        "error": {**_OBJECT_OR_NULL, "description": "When failed: what went wrong"},
    },
    "required": ["execution_id", "status"],
}

_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "executions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "execution_id": {"type": "string"},
                    "workflow_id": {"type": "string"},
                    "status": {"type": "string"},
                    "created_at": {"type": "string"},
                    "updated_at": {"type": "string"},
                },
            },
        }
    },
    "required": ["executions"],
}

_EXECUTION_ID = {"type": "string", "description": "The execution_id a run_* tool returned"}


class ArgumentError(Exception):
    """Tool arguments that do not match the tool's input schema (a tool error, not a crash)."""


@dataclass(frozen=True)
class ToolSpec:
    """One exposed tool. ``workflow_id`` is set for ``run_*`` tools; ``service``/``method`` for
    tools declared in a workflow's ``tools:`` section."""

    name: str
    description: str
    input_schema: dict[str, Any]
    kind: ToolKind
    output_schema: dict[str, Any] | None = None
    title: str | None = None
    annotations: types.ToolAnnotations | None = None
    workflow_id: str | None = None
    service: str | None = None
    method: str | None = None
    _validator: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        jsonschema.Draft202012Validator.check_schema(self.input_schema)
        object.__setattr__(self, "_validator", jsonschema.Draft202012Validator(self.input_schema))

    def to_mcp(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            annotations=self.annotations,
        )

    def validate(self, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """The arguments as a dict; :class:`ArgumentError` names every field that is wrong."""
        values = dict(arguments or {})
        errors = sorted(self._validator.iter_errors(values), key=lambda e: list(e.absolute_path))
        if errors:
            problems = "; ".join(_describe(error, self.input_schema) for error in errors)
            raise ArgumentError(f"invalid arguments for {self.name}: {problems}")
        return values


def _describe(error: jsonschema.ValidationError, schema: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    instance: Any = error.instance
    expected: Any = error.validator_value
    if error.validator == "required":
        missing = [n for n in expected if not isinstance(instance, dict) or n not in instance]
        names = ", ".join(f"'{n}'" for n in missing)
        return f"missing required argument{'s' if len(missing) > 1 else ''} {names}"
    if error.validator == "additionalProperties":
        parent: Any = error.schema
        known = list(parent.get("properties") or {}) if isinstance(parent, dict) else []
        extra = [n for n in instance if n not in known] if isinstance(instance, dict) else []
        accepted = ", ".join(known) or "none"
        names = ", ".join(f"'{n}'{_suggest(n, known)}" for n in extra)
        return f"unknown argument{'s' if len(extra) > 1 else ''} {names}; accepted: {accepted}"
    if error.validator == "type":
        got = json.dumps(instance, ensure_ascii=False, default=str)
        if len(got) > 60:
            got = got[:57] + "..."
        return f"argument '{where}' must be {_types(expected)}, got {got}"
    if where:
        return f"argument '{where}': {error.message}"
    return error.message


def _types(value: Any) -> str:
    if isinstance(value, list):
        return " or ".join(str(v) for v in value)
    return str(value)


def _suggest(name: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def tool_name(prefix: str, identifier: str) -> str:
    """A valid MCP tool name (``[A-Za-z0-9._-]``, at most 128 characters)."""
    return _NAME_OK.sub("_", f"{prefix}{identifier}")[:128]


# ------------------------------------------------------------------------------ run_<workflow>


def workflow_tool(workflow: WorkflowDefinition, wait: float, prefix: str = "run_") -> ToolSpec:
    schema = workflow.input_schema()
    for prop in schema["properties"].values():
        if "type" not in prop:  # `type: any`
            prop.update(ANY_JSON)
    if workflow.inputs:
        schema["additionalProperties"] = False  # the engine rejects undeclared inputs
    about = (workflow.description or f"Run the {workflow.name} workflow.").strip()
    guide = (
        f"Returns the result if the run finishes within {wait:g} s; otherwise status 'running' and "
        "an execution_id for get_execution. A run that needs a person returns status 'halted' "
        "with a prompt; answer it with resume_execution."
    )
    return ToolSpec(
        name=tool_name(prefix, workflow.id),
        title=workflow.name,
        description=f"{about}\n\n{guide}",
        input_schema=schema,
        output_schema=RESULT_SCHEMA,
        kind="workflow",
        workflow_id=workflow.id,
        annotations=types.ToolAnnotations(title=workflow.name, read_only_hint=False),
    )


# ------------------------------------------------------------------------------ companions


def companion_tools(wait: float, workflow_ids: Sequence[str]) -> list[ToolSpec]:
    wait_schema = {
        "type": "number",
        "minimum": 0,
        "default": 0,
        "description": f"Seconds to wait for the execution to finish or halt (at most {wait:g})",
    }
    workflow_filter: dict[str, Any] = {"type": "string", "description": "Only this workflow"}
    if workflow_ids:
        workflow_filter["enum"] = list(workflow_ids)
    return [
        ToolSpec(
            name="get_execution",
            title="Get an execution",
            description="Status, output, halt prompt or error of an execution; optionally wait "
            "a bounded time for it to finish or halt.",
            input_schema={
                "type": "object",
                "properties": {"execution_id": _EXECUTION_ID, "wait_seconds": wait_schema},
                "required": ["execution_id"],
                "additionalProperties": False,
            },
            output_schema=RESULT_SCHEMA,
            kind="companion",
            annotations=types.ToolAnnotations(read_only_hint=True),
        ),
        ToolSpec(
            name="resume_execution",
            title="Resume a halted execution",
            description="Answer a halted execution: approve or reject an approval "
            "(approved: true/false), or give the response a halt step asked for. Returns like "
            "the run_* tools.",
            input_schema={
                "type": "object",
                "properties": {
                    "execution_id": _EXECUTION_ID,
                    "approved": {
                        "type": "boolean",
                        "description": "For approvals: true approves, false rejects",
                    },
                    "response": {
                        **ANY_JSON,
                        "description": "For halt steps: the answer (any JSON value)",
                    },
                    "by": {"type": "string", "description": "Who decided (kept in the timeline)"},
                },
                "required": ["execution_id"],
                "additionalProperties": False,
            },
            output_schema=RESULT_SCHEMA,
            kind="companion",
            annotations=types.ToolAnnotations(read_only_hint=False),
        ),
        ToolSpec(
            name="cancel_execution",
            title="Cancel an execution",
            description="Cancel a halted execution now, or a running one at its next step.",
            input_schema={
                "type": "object",
                "properties": {"execution_id": _EXECUTION_ID},
                "required": ["execution_id"],
                "additionalProperties": False,
            },
            output_schema=RESULT_SCHEMA,
            kind="companion",
            annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True),
        ),
        ToolSpec(
            name="list_executions",
            title="List executions",
            description="Recent executions of the served workflows, newest first.",
            input_schema={
                "type": "object",
                "properties": {
                    "workflow_id": workflow_filter,
                    "status": {"type": "string", "enum": STATUSES},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                },
                "additionalProperties": False,
            },
            output_schema=_LIST_SCHEMA,
            kind="companion",
            annotations=types.ToolAnnotations(read_only_hint=True),
        ),
    ]


COMPANION_TOOLS = ("get_execution", "resume_execution", "cancel_execution", "list_executions")


def _declared_spec(tool: DeclaredTool) -> ToolSpec:
    return ToolSpec(
        name=tool_name("", tool.id),
        description=tool.description or f"Call {tool.service}.{tool.method}",
        input_schema=tool.input_schema(),
        kind="declared",
        service=tool.service,
        method=tool.method,
    )


# ------------------------------------------------------------------------------ all together


def build_tools(
    workflows: Sequence[WorkflowDefinition],
    *,
    wait: float,
    declared: bool = True,
    prefix: str = "run_",
) -> dict[str, ToolSpec]:
    """Every tool, by name: one per workflow (``<prefix><workflow id>``), the companions, and
    the declared ones. Raises :class:`dwf.ConfigurationError` on a name two tools share."""
    specs: dict[str, ToolSpec] = {}
    owners: dict[str, str] = {}

    def add(spec: ToolSpec, owner: str) -> None:
        existing = specs.get(spec.name)
        if existing is not None:
            if existing.kind == spec.kind == "declared" and existing == spec:
                return  # the same tool declared by two workflows
            raise dwf.ConfigurationError(
                f"two tools would be named '{spec.name}': {owners[spec.name]} and {owner}; "
                "rename one of them"
            )
        specs[spec.name] = spec
        owners[spec.name] = owner

    for workflow in workflows:
        add(workflow_tool(workflow, wait, prefix), f"workflow '{workflow.id}'")
    for spec in companion_tools(wait, [w.id for w in workflows]):
        add(spec, "the built-in tool")
    if declared:
        for workflow in workflows:
            for tool in declared_tools(workflow):
                if tool.needs_approval:
                    logger.info(
                        "tool '%s' of workflow '%s' needs an approval per call; not exposed",
                        tool.id,
                        workflow.id,
                    )
                    continue
                add(_declared_spec(tool), f"tool '{tool.id}' of workflow '{workflow.id}'")
    return specs
