"""``agent``: run an LLM agent on a prompt until it answers; store the answer in ``output``.

The loop (``dwf_ai.steps._loop``) keeps the whole conversation with the provider's tool-calling
protocol, runs the tool calls of a turn concurrently, journals every model response and tool
result, halts for tools that need approval and follows handoffs to other agents. The answer is
stored as an object when it is a JSON object (so routers can read its fields), checked against
``output_schema`` when there is one, or taken from the arguments of ``output_tool``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from dwf import expr
from dwf.dsl.model import StepDef, WorkflowDefinition
from dwf.extensions import Continue, Halt, Outcome, StepConfig, StepType, did_you_mean
from dwf.runtime import StepContext
from dwf_ai.definitions import JsonSchema, agent_problems, reachable_tools
from dwf_ai.steps._loop import AgentLoop, AIRuntime, record_result

__all__ = ["AgentConfig", "AgentStep"]

#: Variables an agent or handoff step sets besides its ``output``.
BOOKKEEPING = ("_current_agent", "_handoff_to", "_usage")


class AgentConfig(StepConfig):
    agent_id: str
    prompt: Any
    output: str | None = None
    output_schema: JsonSchema = None
    output_tool: str | None = None
    max_turns: int | None = Field(default=None, ge=1, le=1000)
    max_handoffs: int = Field(default=5, ge=0, le=100)
    timeout: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0, le=100)
    retry_delay: float = Field(default=1.0, ge=0)
    retry_backoff: float = Field(default=2.0, ge=1)


class AgentStep(StepType[AgentConfig]):
    name = "agent"
    config_model = AgentConfig
    description = "Run an LLM agent (tools, handoffs, structured output) and store its answer."
    retryable = True

    def __init__(self, runtime: AIRuntime | None = None) -> None:
        self.runtime = runtime or AIRuntime()

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: AgentConfig = step.config  # type: ignore[assignment]
        loop = AgentLoop(
            ctx,
            self.runtime,
            step_id=step.id,
            agent_id=config.agent_id,
            prompt=lambda: expr.render(ctx.resolve(config.prompt)),
            max_turns=config.max_turns,
            max_handoffs=config.max_handoffs,
            output_schema=config.output_schema,
            output_tool=config.output_tool,
        )
        outcome = await loop.run()
        if isinstance(outcome, Halt):
            return outcome
        return Continue(output=record_result(ctx, config.output, outcome))

    def outputs(self, step: StepDef) -> list[str]:
        config: AgentConfig = step.config  # type: ignore[assignment]
        return ([config.output] if config.output else []) + list(BOOKKEEPING)

    def output_schema(self, step: StepDef) -> Mapping[str, Any] | None:
        config: AgentConfig = step.config  # type: ignore[assignment]
        return config.output_schema if config.output else None

    def reads(self, step: StepDef) -> list[tuple[str, str]]:
        # Not the default: a JSON Schema's "$ref"/"$defs" are not references to variables.
        config: AgentConfig = step.config  # type: ignore[assignment]
        return [("prompt", ref) for ref in expr.references(config.prompt)]

    def check(self, step: StepDef, workflow: WorkflowDefinition) -> list[tuple[str, str]]:
        config: AgentConfig = step.config  # type: ignore[assignment]
        problems = [
            ("agent_id", p)
            for p in agent_problems(workflow, config.agent_id, self.runtime.tools.names())
        ]
        if config.output_tool is not None and not problems:
            tools = reachable_tools(workflow, config.agent_id)
            if config.output_tool not in tools:
                known = ", ".join(sorted(tools)) or "none"
                message = (
                    f"'{config.output_tool}' is not a tool of agent '{config.agent_id}' (or of an "
                    f"agent it hands off to){did_you_mean(config.output_tool, tools)}; its "
                    f"tools: {known}"
                )
                problems.append(("output_tool", message))
        return problems
