"""``agent``: run an LLM agent on a prompt until it answers; store the answer in ``output``.

The loop (``dwf_ai.steps._loop``) keeps the whole conversation with the provider's tool-calling
protocol, runs the tool calls of a turn concurrently, journals every model response and tool
result, halts for tools that need approval and follows handoffs to other agents. The answer is
stored as an object when it is a JSON object (so routers can read its fields), checked against
``output_schema`` when there is one, or taken from the arguments of ``output_tool``.

Guardrails (``_guard``): ``input_guardrails`` check the prompt before the model is called (the
model sees it after redaction), ``output_guardrails`` the answer before it is stored; the
agent's own lists run first. A failure goes to ``on_fail`` with ``$_guardrail_failure`` set, or
fails the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from dwf import expr
from dwf.dsl.model import StepDef, WorkflowDefinition
from dwf.extensions import Continue, Halt, Outcome, StepType, did_you_mean
from dwf.runtime import StepContext
from dwf_ai.definitions import JsonSchema, agent_problems, agents_of, reachable_tools
from dwf_ai.guardrails.step import FAILURE_VARIABLE
from dwf_ai.steps._guard import Blocked, GuardedConfig, blocked_outcome
from dwf_ai.steps._loop import AgentLoop, AIRuntime, LoopResult, record_blocked, record_result

__all__ = ["AgentConfig", "AgentStep"]

#: Variables an agent or handoff step sets besides its ``output``.
BOOKKEEPING = ("_current_agent", "_handoff_to", "_usage")


class AgentConfig(GuardedConfig):
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
            input_guardrails=config.input_guardrails,
            output_guardrails=config.output_guardrails,
        )
        return finish(ctx, step.id, config, await loop.run())

    def targets(self, step: StepDef) -> list[tuple[str, str]]:
        config: AgentConfig = step.config  # type: ignore[assignment]
        return [("on_fail", config.on_fail)] if config.on_fail is not None else []

    def outputs(self, step: StepDef) -> list[str]:
        config: AgentConfig = step.config  # type: ignore[assignment]
        guarded = [FAILURE_VARIABLE] if config.on_fail is not None else []
        return ([config.output] if config.output else []) + list(BOOKKEEPING) + guarded

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
            for p in agent_problems(
                workflow, config.agent_id, self.runtime.tools.names(), self._mcp_servers()
            )
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
        problems.extend(guard_problems(workflow, config, config.agent_id))
        return problems

    def _mcp_servers(self) -> list[str]:
        pool = self.runtime.mcp_pool
        return list(pool.servers) if pool is not None else []


def finish(
    ctx: StepContext, step_id: str, config: GuardedConfig, outcome: LoopResult | Halt | Blocked
) -> Outcome:
    """What an agent or handoff step returns for its loop's outcome: a halt as it is, a
    guardrail failure routed (or raised), else the answer recorded."""
    if isinstance(outcome, Halt):
        return outcome
    if isinstance(outcome, Blocked):
        audit = record_blocked(ctx, outcome)
        return blocked_outcome(ctx, step_id, config.on_fail, outcome, audit)
    output: str | None = getattr(config, "output", None)
    return Continue(output=record_result(ctx, output, outcome))


def guard_problems(
    workflow: WorkflowDefinition, config: GuardedConfig, agent_id: str | None
) -> list[tuple[str, str]]:
    """``on_fail`` without any guardrail to fail (the step's, or those of the agent it
    starts with) can never be taken: say so rather than keep a dead route."""
    if config.on_fail is None or config.input_guardrails or config.output_guardrails:
        return []
    agents = agents_of(workflow)
    if agent_id is None or agent_id not in agents or "$" in agent_id:
        return []  # decided at run time, or reported already
    if any(a.input_guardrails or a.output_guardrails for a in agents.values()):
        return []  # an agent reached through a handoff may check its answer
    return [
        (
            "on_fail",
            "'on_fail' is taken when a guardrail fails, but this step and its agents have no "
            "input_guardrails or output_guardrails; add some, or remove 'on_fail'",
        )
    ]
