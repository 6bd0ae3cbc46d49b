"""``mcp``: call a tool on an MCP server defined under the workflow's ``mcp_servers``.

::

    - id: weather
      type: mcp
      server: everything
      tool: get-structured-content
      arguments: {location: $input.city}
      output: forecast
      timeout: 20          # seconds for this call (default: the server's 'timeout')
      retries: 2           # like 'call': retry_delay, retry_backoff
      on_error: no_forecast

The output is the tool's structured content when it sent some, else its text content (text
blocks joined by newlines). A tool that reports an error (``isError``) fails the step with the
server's message, so ``on_error`` and ``retries`` apply. A completed call is checkpointed like
every step, so a resumed execution does not call the tool again; the step's idempotency key is
sent as ``_meta["dwf/idempotency-key"]`` for servers that want to recognise a call repeated
after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from dwf.dsl.model import StepDef, WorkflowDefinition
from dwf.extensions import Continue, Outcome, StepConfig, StepType, did_you_mean
from dwf.runtime import StepContext
from dwf_ai.mcp.client import MCPClientPool
from dwf_ai.mcp.config import mcp_servers_of
from dwf_ai.mcp.errors import MCPInvalidArguments, MCPToolError

__all__ = ["MCPConfig", "MCPStep"]

#: Longest part of a tool's error text copied into the step's error message.
_MAX_ERROR_TEXT = 4000


class MCPConfig(StepConfig):
    """The ``mcp`` step's keys."""

    server: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    #: A mapping whose values may be ``$references``, or one ``$reference`` to a mapping.
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    output: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0, le=100)
    retry_delay: float = Field(default=1.0, ge=0)
    retry_backoff: float = Field(default=2.0, ge=1)


class MCPStep(StepType[MCPConfig]):
    """Calls a tool through the engine's :class:`MCPClientPool` (given to the constructor, so
    all steps of an engine share its connections)."""

    name = "mcp"
    config_model = MCPConfig
    description = "Call a tool on an MCP server (stdio or Streamable HTTP)."
    retryable = True

    def __init__(self, pool: MCPClientPool | None = None) -> None:
        self.pool = pool if pool is not None else MCPClientPool()

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: MCPConfig = step.config  # type: ignore[assignment]
        arguments = ctx.resolve(config.arguments)
        if not isinstance(arguments, Mapping):
            raise MCPInvalidArguments(
                f"step '{step.id}': 'arguments' must be a mapping of argument name to value, "
                f"but {config.arguments!r} resolved to {type(arguments).__name__}",
                server=config.server,
                tool=config.tool,
            )
        result = await self.pool.call_tool(
            config.server,
            config.tool,
            arguments,
            servers=mcp_servers_of(ctx.workflow),
            timeout=config.timeout,
            idempotency_key=ctx.idempotency_key,
        )
        ctx.emit("mcp.tool_called", server=config.server, tool=config.tool, error=result.is_error)
        if result.is_error:
            text = result.text.strip() or "(no message)"
            if len(text) > _MAX_ERROR_TEXT:
                text = text[:_MAX_ERROR_TEXT] + " ..."
            raise MCPToolError(
                f"tool '{config.tool}' on MCP server '{config.server}' failed: {text}",
                server=config.server,
                tool=config.tool,
            )
        value = result.value
        if config.output is not None:
            ctx.set(config.output, value)
        return Continue(output=value)

    def check(self, step: StepDef, workflow: WorkflowDefinition) -> list[tuple[str, str]]:
        config: MCPConfig = step.config  # type: ignore[assignment]
        problems: list[tuple[str, str]] = []
        defined = sorted({*mcp_servers_of(workflow), *self.pool.servers})
        if config.server not in defined:
            listed = (
                f"defined servers: {', '.join(defined)}"
                if defined
                else "the workflow has no top-level 'mcp_servers'"
            )
            problems.append(
                (
                    "server",
                    f"unknown MCP server '{config.server}'{did_you_mean(config.server, defined)} "
                    f"({listed})",
                )
            )
        if isinstance(config.arguments, str) and not config.arguments.startswith("$"):
            problems.append(
                (
                    "arguments",
                    "'arguments' must be a mapping (or a $reference to one), got the string "
                    f"{config.arguments!r}",
                )
            )
        return problems
