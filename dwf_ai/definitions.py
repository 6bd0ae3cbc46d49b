"""The top-level ``agents`` and ``tools`` sections: typed definitions and their static checks.

Both sections are lists, as the original writes them::

    agents:
      - id: triage
        model: gpt-4o-mini
        instructions: You are a support triage agent.
        tools: [classify_request]
        handoffs: [{agent_id: billing, description: Transfer to billing}]
    tools:
      - id: classify_request
        description: Classify the request
        parameters:
          - {name: category, type: string, required: true}
        service: SupportServices
        method: classify_request

A mapping (``agents: {triage: {...}}``) is refused with a message that shows the list form: one
spelling keeps error locations exact and the files greppable. Ids are unique within their
section; tool ids are scoped to the workflow, so two workflows may define different tools with
one id. The parsed sections are ``workflow.extensions["agents"]`` and
``workflow.extensions["tools"]`` (lists of :class:`AgentDef` and :class:`ToolDef`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import jsonschema
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from dwf.extensions import did_you_mean
from dwf_ai.guardrails.checks import CheckList

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition

__all__ = [
    "FILE_SEARCH_TOOL",
    "HANDOFF_TOOL_PREFIX",
    "AgentDef",
    "AgentFileSearch",
    "AgentsSection",
    "HandoffDef",
    "JsonSchema",
    "ToolDef",
    "ToolParam",
    "ToolsSection",
    "agent_problems",
    "agents_of",
    "check_json_schema",
    "check_tool_name",
    "reachable_tools",
    "tools_of",
]

#: Handoffs are offered to the model as tools named ``transfer_to_<agent id>``.
HANDOFF_TOOL_PREFIX = "transfer_to_"

#: The name the model sees for an agent's ``file_search`` tool (unless it says ``name:``).
FILE_SEARCH_TOOL = "file_search"

# What OpenAI and Anthropic accept as a tool name.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

ParamType = Literal["string", "number", "integer", "boolean", "array", "object", "any"]


class _Definition(BaseModel):
    """Unknown keys are errors; an explicit ``null`` means "absent", so defaults apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


def check_json_schema(schema: Mapping[str, Any]) -> str | None:
    """The reason ``schema`` is not a valid JSON Schema, or ``None`` when it is."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        return f"invalid JSON Schema: {exc.message}"
    return None


def _valid_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        problem = check_json_schema(value)
        if problem is not None:
            raise ValueError(problem)
    return value


#: An optional JSON Schema, checked when the workflow loads.
JsonSchema = Annotated[dict[str, Any] | None, AfterValidator(_valid_schema)]


# ------------------------------------------------------------------------------------ tools


class ToolParam(_Definition):
    """One parameter of a YAML tool. ``type: any`` accepts every JSON value.

    A parameter is optional unless it says ``required: true``. (The original documents ``true``
    as the default but never checked arguments; its own example relies on optional parameters:
    ``lookup_order`` by id *or* email, ``refund_order``'s amount "omit for full refund". dwf
    validates arguments against the schema, so the default follows what the files mean.)
    """

    name: str
    type: ParamType = "string"
    required: bool = False
    description: str | None = None
    enum: list[Any] | None = None
    items: dict[str, Any] | None = None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {}
        if self.type != "any":
            schema["type"] = self.type
        if self.description:
            schema["description"] = self.description
        if self.enum is not None:
            schema["enum"] = self.enum
        if self.items is not None:
            schema["items"] = self.items
        return schema


class ToolDef(_Definition):
    """A tool bound to a registered service method (``ctx.call_service(service, method, args)``).

    ``needs_approval: true`` halts the execution before each call until a person approves it.
    """

    id: str
    description: str
    parameters: list[ToolParam] = Field(default_factory=list)
    service: str
    method: str
    needs_approval: bool = False

    @field_validator("id")
    @classmethod
    def _tool_name(cls, value: str) -> str:
        return check_tool_name(value)

    @field_validator("parameters")
    @classmethod
    def _unique_params(cls, value: list[ToolParam]) -> list[ToolParam]:
        seen: set[str] = set()
        for param in value:
            if param.name in seen:
                raise ValueError(f"parameter '{param.name}' is declared twice")
            seen.add(param.name)
        return value

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the arguments: an object with exactly the declared parameters."""
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {p.name: p.json_schema() for p in self.parameters},
            "additionalProperties": False,
        }
        required = [p.name for p in self.parameters if p.required]
        if required:
            schema["required"] = required
        return schema


def check_tool_name(value: str) -> str:
    """``value`` if it is a valid tool name, else a ``ValueError`` saying why."""
    if not _TOOL_NAME.match(value):
        raise ValueError(
            f"tool id '{value}' must be 1-64 letters, digits, '_' or '-' (the name the model sees)"
        )
    if value.startswith(HANDOFF_TOOL_PREFIX):
        raise ValueError(
            f"tool id '{value}': names starting with '{HANDOFF_TOOL_PREFIX}' are reserved for "
            "handoffs (list the agent under 'handoffs' instead)"
        )
    return value


# ----------------------------------------------------------------------------------- agents


class HandoffDef(_Definition):
    """A handoff target; the model sees it as the tool ``transfer_to_<agent_id>``."""

    agent_id: str
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_id(cls, data: Any) -> Any:
        return {"agent_id": data} if isinstance(data, str) else data

    @property
    def tool_name(self) -> str:
        return HANDOFF_TOOL_PREFIX + self.agent_id


class AgentFileSearch(_Definition):
    """An agent's ``file_search`` tool: the model sends a query, the workflow chose the files.

    ``files`` are paths, directories or globs relative to the workflow file's folder;
    ``max_results`` is both the default and the most the model may ask for per call.
    A bare list (``file_search: [docs/*.md]``) is the same as ``{files: [...]}``.
    """

    files: list[str] = Field(min_length=1)
    max_results: int = Field(default=5, ge=1, le=50)
    name: str = FILE_SEARCH_TOOL
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_files(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"files": [data]}
        return {"files": data} if isinstance(data, list) else data

    @field_validator("name")
    @classmethod
    def _tool_name(cls, value: str) -> str:
        return check_tool_name(value)


class AgentDef(_Definition):
    """An LLM agent: its model, instructions, tools, handoffs and model settings.

    ``model`` is a name the extension's model registry knows, or a provider model name
    (``gpt-4o-mini``, ``claude-...``, ``openai:...``); ``provider`` forces the provider.
    ``max_turns`` caps the model calls of a step that starts with this agent (the step's own
    ``max_turns`` wins; default 10). ``output_schema`` asks for structured output.

    ``mcp_servers`` gives the agent every tool of those servers (names under the workflow's
    ``mcp_servers``); ``file_search`` gives it a ``file_search`` tool over fixed files.
    ``input_guardrails`` check the prompt of every step that starts with this agent, before the
    model is called; ``output_guardrails`` check every answer this agent gives a step, before it
    is stored (both run before the step's own checks of the same stage).
    """

    id: str
    name: str | None = None
    model: str
    provider: str | None = None
    instructions: str | None = None
    tools: list[str] = Field(default_factory=list)
    handoffs: list[HandoffDef] = Field(default_factory=list)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    model_settings: dict[str, Any] = Field(default_factory=dict)
    max_turns: int | None = Field(default=None, ge=1, le=1000)
    output_schema: JsonSchema = None
    mcp_servers: list[str] = Field(default_factory=list)
    file_search: AgentFileSearch | None = None
    input_guardrails: CheckList = Field(default_factory=list)
    output_guardrails: CheckList = Field(default_factory=list)

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            if name in value[:i]:
                raise ValueError(f"tool '{name}' is listed twice")
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _unique_servers(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            if name in value[:i]:
                raise ValueError(f"MCP server '{name}' is listed twice")
        return value

    @model_validator(mode="after")
    def _handoffs(self) -> AgentDef:
        targets = [h.agent_id for h in self.handoffs]
        for i, target in enumerate(targets):
            if target == self.id:
                raise ValueError(f"agent '{self.id}' cannot hand off to itself")
            if target in targets[:i]:
                raise ValueError(f"handoff to '{target}' is listed twice")
        if self.file_search is not None and self.file_search.name in self.tools:
            raise ValueError(
                f"the file_search tool is named '{self.file_search.name}', like a tool in "
                "'tools'; rename one (file_search takes 'name: ...')"
            )
        return self


# --------------------------------------------------------------------------- the sections


def _list_form(section: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, Mapping):
            first = next(iter(value), "my_id")
            raise PydanticCustomError(
                "list_form",
                "'{section}' must be a list, not a mapping: write each entry as "
                "`- id: {name}` followed by its other keys",
                {"section": section, "name": first},
            )
        return value

    return check


def _unique_ids(kind: str) -> Callable[[list[Any]], list[Any]]:
    def check(items: list[Any]) -> list[Any]:
        first: dict[str, int] = {}
        errors: list[InitErrorDetails] = []
        for index, item in enumerate(items):
            if item.id in first:
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "duplicate_id",
                            "duplicate {kind} id '{id}' (entry {first} of the list has it too)",
                            {"kind": kind, "id": item.id, "first": first[item.id]},
                        ),
                        loc=(index, "id"),
                        input=item.id,
                    )
                )
            else:
                first[item.id] = index
        if errors:
            raise ValidationError.from_exception_data(kind, errors)
        return items

    return check


AgentsSection = Annotated[
    list[AgentDef],
    BeforeValidator(_list_form("agents")),
    AfterValidator(_unique_ids("agent")),
]
ToolsSection = Annotated[
    list[ToolDef],
    BeforeValidator(_list_form("tools")),
    AfterValidator(_unique_ids("tool")),
]


def agents_of(workflow: WorkflowDefinition) -> dict[str, AgentDef]:
    """The workflow's agents by id (empty when it has no ``agents`` section)."""
    return {a.id: a for a in workflow.extensions.get("agents") or ()}


def tools_of(workflow: WorkflowDefinition) -> dict[str, ToolDef]:
    """The workflow's YAML tools by id (empty when it has no ``tools`` section)."""
    return {t.id: t for t in workflow.extensions.get("tools") or ()}


def _index_of(workflow: WorkflowDefinition, agent_id: str) -> int:
    for index, agent in enumerate(workflow.extensions.get("agents") or ()):
        if agent.id == agent_id:
            return index
    return -1


def _at(workflow: WorkflowDefinition, *path: str | int) -> str:
    mark = workflow.mark(path)
    return f" (line {mark.line})" if mark is not None else ""


def agent_problems(
    workflow: WorkflowDefinition,
    start: str,
    python_tools: Iterable[str],
    mcp_servers: Iterable[str] | None = None,
) -> list[str]:
    """Problems of the agent ``start`` and of every agent it can hand off to: an unknown agent,
    tools that are neither in the workflow's ``tools`` nor registered Python tools, handoffs to
    unknown agents, MCP servers that are not defined (``mcp_servers``: the names known besides
    the workflow's own section). Each message names the agent and the line of the entry."""
    agents = agents_of(workflow)
    if start not in agents:
        known = ", ".join(agents) or "none (add an 'agents' section)"
        return [f"unknown agent '{start}'{did_you_mean(start, agents)}; agents: {known}"]
    available = set(tools_of(workflow)) | set(python_tools)
    section = workflow.extensions.get("mcp_servers")
    servers = set(section or ()) | set(mcp_servers or ())
    problems: list[str] = []
    seen: set[str] = set()
    todo = [start]
    while todo:
        agent_id = todo.pop(0)
        if agent_id in seen:
            continue
        seen.add(agent_id)
        agent = agents[agent_id]
        index = _index_of(workflow, agent_id)
        via = "" if agent_id == start else " (reached through a handoff)"
        for k, name in enumerate(agent.tools):
            if name not in available:
                where = _at(workflow, "agents", index, "tools", k)
                problems.append(
                    f"agent '{agent_id}'{via} names unknown tool '{name}'{where}"
                    f"{did_you_mean(name, available)}; define it under 'tools' or register a "
                    "Python tool"
                )
        for k, server in enumerate(agent.mcp_servers):
            if server not in servers:
                where = _at(workflow, "agents", index, "mcp_servers", k)
                defined = ", ".join(sorted(servers)) or "none (add a top-level 'mcp_servers')"
                problems.append(
                    f"agent '{agent_id}'{via} names unknown MCP server '{server}'{where}"
                    f"{did_you_mean(server, servers)}; defined servers: {defined}"
                )
        for k, handoff in enumerate(agent.handoffs):
            if handoff.agent_id in agents:
                todo.append(handoff.agent_id)
                continue
            where = _at(workflow, "agents", index, "handoffs", k)
            problems.append(
                f"agent '{agent_id}'{via} hands off to unknown agent '{handoff.agent_id}'{where}"
                f"{did_you_mean(handoff.agent_id, agents)}"
            )
    return problems


def reachable_tools(workflow: WorkflowDefinition, start: str) -> set[str]:
    """The tool names of ``start`` and of every agent it can hand off to."""
    agents = agents_of(workflow)
    found: set[str] = set()
    seen: set[str] = set()
    todo = [start]
    while todo:
        agent = agents.get(todo.pop())
        if agent is None or agent.id in seen:
            continue
        seen.add(agent.id)
        found.update(agent.tools)
        todo.extend(h.agent_id for h in agent.handoffs)
    return found
