"""Tool calls of the agent loop: which tools an agent sees, checking a call's arguments against
the tool's JSON Schema, and running it (a YAML tool through its service, a Python tool directly,
an MCP tool through the engine's MCP pool, ``file_search`` over the agent's files).

A call the model got wrong (an unknown tool, arguments that are not JSON or do not match the
schema, an MCP tool the server no longer has) is answered with an error message for the model,
never raised: the model can correct itself. A misconfiguration (a tool bound to a service that is
not registered, an undefined MCP server) fails the step, and so does an MCP server that cannot be
reached or does not answer in time (retryable: the step's ``retries`` apply).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from dwf.errors import NonRetryableError, RegistryError, StepFailed
from dwf.runtime import StepContext
from dwf_ai.definitions import AgentDef, AgentFileSearch, ToolDef
from dwf_ai.mcp.config import mcp_servers_of
from dwf_ai.mcp.errors import (
    MCPConfigError,
    MCPConnectionError,
    MCPInvalidCall,
    MCPTimeoutError,
    MCPToolNotFound,
)
from dwf_ai.mcp.result import ToolResult
from dwf_ai.mcp.toolset import MCPTool
from dwf_ai.models.base import ToolCall, ToolSpec
from dwf_ai.search import FILE_SEARCH_PARAMETERS, run_file_search_tool
from dwf_ai.steps._runtime import AIRuntime
from dwf_ai.tools import Tool, ToolRegistry

__all__ = [
    "BoundTool",
    "MCPToolMisconfigured",
    "MCPToolUnavailable",
    "PreparedCall",
    "as_text",
    "bind_tools",
    "file_search_spec",
    "first_handoff",
    "invoke",
    "is_misconfiguration",
    "prepare",
    "run_all",
    "workflow_dir",
]


class MCPToolUnavailable(StepFailed):
    """An agent's MCP tool could not be called: its server cannot be reached, went away or did
    not answer in time. The step fails (and its ``retries`` apply); ``server`` and ``tool`` say
    which."""


class MCPToolMisconfigured(NonRetryableError):
    """An agent's MCP tool cannot be called as configured (an undefined server, an unset
    ``${VAR}``); never retried."""


@dataclass(frozen=True)
class BoundTool:
    """A tool as one agent sees it: a YAML tool, a Python tool, an MCP server's tool, the
    agent's file search, or a handoff."""

    spec: ToolSpec
    yaml: ToolDef | None = None
    python: Tool | None = None
    handoff_to: str | None = None
    mcp: MCPTool | None = None
    file_search: AgentFileSearch | None = None

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
    mcp_tools: Iterable[MCPTool] = (),
) -> dict[str, BoundTool]:
    """The tools ``agent`` is offered, by name: its ``tools`` (a YAML tool of the workflow wins
    over a Python tool of the same name), its ``file_search`` tool, the tools of its MCP
    servers (``mcp_tools``, already named apart from the others), then ``transfer_to_<id>`` for
    each handoff."""
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
    if agent.file_search is not None:
        search = agent.file_search
        found[search.name] = BoundTool(file_search_spec(search), file_search=search)
    for mcp_tool in mcp_tools:
        found[mcp_tool.spec.name] = BoundTool(mcp_tool.spec, mcp=mcp_tool)
    for handoff in agent.handoffs:
        target = agents.get(handoff.agent_id)
        label = f" ({target.name})" if target is not None and target.name else ""
        description = handoff.description or f"Transfer to agent '{handoff.agent_id}'{label}"
        spec = ToolSpec(handoff.tool_name, description, {"type": "object", "properties": {}})
        found[handoff.tool_name] = BoundTool(spec, handoff_to=handoff.agent_id)
    return found


def file_search_spec(search: AgentFileSearch) -> ToolSpec:
    """The ``file_search`` tool as the model sees it: a query, and at most ``max_results``."""
    parameters = json.loads(json.dumps(FILE_SEARCH_PARAMETERS))
    limit = parameters["properties"]["max_results"]
    limit["maximum"] = search.max_results
    limit["description"] = f"How many passages to return (default and most: {search.max_results})."
    description = search.description or (
        "Search the documents available to you for passages matching a query. Returns file "
        "names, line ranges and snippets, best match first."
    )
    return ToolSpec(search.name, description, parameters)


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


async def invoke(
    ctx: StepContext, item: PreparedCall, key: str, runtime: AIRuntime, *, step_id: str
) -> tuple[str, str | None]:
    """Run a checked call with its idempotency key; return the text for the model and the error
    kind (``None``, or ``"failed"`` for an MCP tool that reported an error, ``"unknown_tool"`` /
    ``"invalid_arguments"`` for a call its MCP server refused as written).

    Raises what fails the step: an MCP server that cannot be reached or answer in time
    (:class:`MCPToolUnavailable`, retryable), an undefined server (:class:`MCPToolMisconfigured`);
    any other exception is the tool's own failure, for the caller to show the model."""
    tool = item.tool
    assert tool is not None
    if tool.mcp is not None:
        return await _call_mcp(ctx, tool.mcp, item.arguments, key, runtime, step_id)
    if tool.file_search is not None:
        search = tool.file_search
        text = await run_file_search_tool(
            item.arguments,
            files=search.files,
            base_dir=workflow_dir(ctx),
            index=runtime.search_index,
            default_max_results=search.max_results,
        )
        return text, None
    if tool.python is not None:
        return as_text(await tool.python.call(item.kwargs, idempotency_key=key)), None
    assert tool.yaml is not None
    # `None` for no arguments: the service convention then applies the method's defaults.
    payload = item.arguments or None
    call: Any = ctx.call_service
    if _takes_key(call):
        value = await call(tool.yaml.service, tool.yaml.method, payload, idempotency_key=key)
    else:
        value = await call(tool.yaml.service, tool.yaml.method, payload)  # the step's key
    return as_text(value), None


async def _call_mcp(
    ctx: StepContext,
    tool: MCPTool,
    arguments: dict[str, Any],
    key: str,
    runtime: AIRuntime,
    step_id: str,
) -> tuple[str, str | None]:
    where = f"tool '{tool.tool}' of MCP server '{tool.server}'"
    try:
        result: ToolResult = await runtime.pool().call_tool(
            tool.server,
            tool.tool,
            arguments,
            servers=mcp_servers_of(ctx.workflow),
            idempotency_key=key,
        )
    except MCPInvalidCall as exc:
        kind = "unknown_tool" if isinstance(exc, MCPToolNotFound) else "invalid_arguments"
        return f"Error: {exc.message}", kind
    except MCPConfigError as exc:
        raise MCPToolMisconfigured(
            f"{where} cannot be called: {exc.message}",
            step=step_id,
            server=tool.server,
            tool=tool.tool,
        ) from exc
    except (MCPConnectionError, MCPTimeoutError) as exc:
        raise MCPToolUnavailable(
            f"agent tool call failed: {exc.message}",
            step=step_id,
            server=tool.server,
            tool=tool.tool,
        ) from exc
    if result.is_error:
        return f"Error: {where} failed: {result.model_text() or '(no message)'}", "failed"
    return result.model_text(), None


def workflow_dir(ctx: StepContext) -> Path:
    """The folder of the workflow file (the current directory for a workflow without a file):
    what an agent's ``file_search`` paths are relative to, as for the ``file_search`` step."""
    file = ctx.workflow.file
    return Path(file).resolve().parent if file is not None else Path.cwd()


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
