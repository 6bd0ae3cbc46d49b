"""Tool calls of the agent loop: which tools an agent sees, checking a call's arguments against
the tool's JSON Schema, and running it (a YAML tool through its service, a Python tool directly).

A call the model got wrong (an unknown tool, arguments that are not JSON or do not match the
schema) is answered with an error message for the model, never raised: the model can correct
itself. Only a misconfiguration (a tool bound to a service that is not registered) fails the step.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from dwf.errors import NonRetryableError, RegistryError
from dwf.runtime import StepContext
from dwf_ai.definitions import AgentDef, ToolDef
from dwf_ai.models.base import ToolCall, ToolSpec
from dwf_ai.tools import Tool, ToolRegistry

__all__ = [
    "BoundTool",
    "PreparedCall",
    "as_text",
    "bind_tools",
    "first_handoff",
    "invoke",
    "is_misconfiguration",
    "prepare",
    "run_all",
]


@dataclass(frozen=True)
class BoundTool:
    """A tool as one agent sees it: a YAML tool, a Python tool or a handoff."""

    spec: ToolSpec
    yaml: ToolDef | None = None
    python: Tool | None = None
    handoff_to: str | None = None

    @property
    def needs_approval(self) -> bool:
        if self.yaml is not None:
            return self.yaml.needs_approval
        return self.python is not None and self.python.needs_approval


@dataclass
class PreparedCall:
    """A tool call with checked arguments, or already answered (``result``) with an error."""

    call: ToolCall
    tool: BoundTool | None
    arguments: dict[str, Any]
    result: str | None = None
    error: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def waits_for_approval(self) -> bool:
        """Whether a person must approve the call first (not when it is already answered)."""
        return self.result is None and self.tool is not None and self.tool.needs_approval


def bind_tools(
    agent: AgentDef,
    agents: Mapping[str, AgentDef],
    workflow_tools: Mapping[str, ToolDef],
    python_tools: ToolRegistry,
    *,
    step_id: str,
) -> dict[str, BoundTool]:
    """The tools ``agent`` is offered, by name: its ``tools`` (a YAML tool of the workflow wins
    over a Python tool of the same name), then ``transfer_to_<id>`` for each handoff."""
    found: dict[str, BoundTool] = {}
    for name in agent.tools:
        yaml = workflow_tools.get(name)
        if yaml is not None:
            found[name] = BoundTool(ToolSpec(name, yaml.description, yaml.json_schema()), yaml=yaml)
            continue
        python = python_tools.get(name)
        if python is None:
            raise NonRetryableError(
                f"agent '{agent.id}' names tool '{name}', which is neither in the workflow's "
                "'tools' nor a Python tool registered with AIExtension(tools=...)",
                step=step_id,
            )
        spec = ToolSpec(name, python.description, python.parameters)
        found[name] = BoundTool(spec, python=python)
    for handoff in agent.handoffs:
        target = agents.get(handoff.agent_id)
        label = f" ({target.name})" if target is not None and target.name else ""
        description = handoff.description or f"Transfer to agent '{handoff.agent_id}'{label}"
        spec = ToolSpec(handoff.tool_name, description, {"type": "object", "properties": {}})
        found[handoff.tool_name] = BoundTool(spec, handoff_to=handoff.agent_id)
    return found


def prepare(call: ToolCall, tools: Mapping[str, BoundTool]) -> PreparedCall:
    """Check a call: the tool exists and the arguments are a JSON object matching its schema
    (and, for a Python tool, convert to its parameter types)."""
    tool = tools.get(call.name)
    if tool is None:
        available = ", ".join(tools) or "none"
        result = f"Error: there is no tool '{call.name}'. Available tools: {available}."
        return PreparedCall(call, None, {}, result, "unknown_tool")
    if tool.handoff_to is not None:
        return PreparedCall(call, tool, {})  # a handoff takes no arguments; extra ones are moot
    try:
        arguments = call.parsed_arguments()
    except ValueError as exc:
        return _invalid(call, tool, str(exc))
    schema = tool.spec.parameters
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    if problems:
        detail = "; ".join(
            f"{'/'.join(str(p) for p in e.path) or '(arguments)'}: {e.message}"
            for e in problems[:5]
        )
        return _invalid(call, tool, detail)
    kwargs: dict[str, Any] = {}
    if tool.python is not None:
        try:
            kwargs = tool.python.bind(arguments)
        except ValueError as exc:  # pydantic's ValidationError
            return _invalid(call, tool, str(exc).replace("\n", " "))
    return PreparedCall(call, tool, arguments, kwargs=kwargs)


def _invalid(call: ToolCall, tool: BoundTool, reason: str) -> PreparedCall:
    result = (
        f"Error: invalid arguments for tool '{call.name}': {reason}. Call it again with "
        "arguments that match its JSON Schema."
    )
    return PreparedCall(call, tool, {}, result, "invalid_arguments")


def first_handoff(calls: list[ToolCall], tools: Mapping[str, BoundTool]) -> int | None:
    """The one handoff a turn can make: its first call of a handoff tool."""
    for k, call in enumerate(calls):
        tool = tools.get(call.name)
        if tool is not None and tool.handoff_to is not None:
            return k
    return None


async def invoke(ctx: StepContext, item: PreparedCall, key: str) -> Any:
    """Run a checked call with its idempotency key."""
    tool = item.tool
    assert tool is not None
    if tool.python is not None:
        return await tool.python.call(item.kwargs, idempotency_key=key)
    assert tool.yaml is not None
    # `None` for no arguments: the service convention then applies the method's defaults.
    payload = item.arguments or None
    call: Any = ctx.call_service
    if _takes_key(call):
        return await call(tool.yaml.service, tool.yaml.method, payload, idempotency_key=key)
    return await call(tool.yaml.service, tool.yaml.method, payload)  # the step's key


def _takes_key(fn: Any) -> bool:
    try:
        return "idempotency_key" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def is_misconfiguration(exc: BaseException) -> bool:
    """A tool bound to an unregistered service or method: the step fails, the model is not
    asked to work around it."""
    return isinstance(exc, RegistryError) or isinstance(exc.__cause__, RegistryError)


def as_text(value: Any) -> str:
    """A tool result as the text the model reads: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


async def run_all(coroutines: Iterable[Awaitable[None]]) -> None:
    """Run concurrently; when one fails, cancel the others before re-raising its error (so no
    tool keeps writing to the journal of a step that has failed)."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
