"""``handoff``: transfer the conversation to another agent, which answers into ``output``.

Keys (the original's, made real): ``to`` (or ``target_agent``) names the agent, by default the
``$_handoff_to`` an agent step left; ``from`` and ``reason`` describe the transfer; ``context``
is handed to the target agent with them (or ``prompt`` replaces that message entirely). The
target agent runs the same durable loop as an ``agent`` step; its answer goes to ``output``.
Afterwards ``_handoff_to`` is cleared, ``_current_agent`` is the agent that answered and
``_handoff_context`` records ``{from, to, reason, timestamp}``. ``input_guardrails``,
``output_guardrails`` and ``on_fail`` work as on the ``agent`` step.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from dwf import expr
from dwf.dsl.model import StepDef, WorkflowDefinition
from dwf.errors import StepFailed
from dwf.extensions import Outcome, StepType
from dwf.runtime import StepContext
from dwf_ai.definitions import agent_problems
from dwf_ai.guardrails.step import FAILURE_VARIABLE
from dwf_ai.steps._guard import GuardedConfig
from dwf_ai.steps._loop import AgentLoop, AIRuntime, LoopResult
from dwf_ai.steps.agent import finish, guard_problems

__all__ = ["HandoffConfig", "HandoffStep"]


class HandoffConfig(GuardedConfig):
    to: str | None = None
    target_agent: str | None = None
    from_: str | None = Field(default=None, alias="from")
    reason: str | None = None
    context: Any = None
    prompt: str | None = None
    output: str | None = None
    max_turns: int | None = Field(default=None, ge=1, le=1000)
    max_handoffs: int = Field(default=5, ge=0, le=100)
    timeout: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0, le=100)
    retry_delay: float = Field(default=1.0, ge=0)
    retry_backoff: float = Field(default=2.0, ge=1)

    @model_validator(mode="after")
    def _one_target(self) -> HandoffConfig:
        if self.to is not None and self.target_agent is not None:
            raise ValueError("give the target agent once: 'to' or 'target_agent', not both")
        return self

    @property
    def target(self) -> str | None:
        return self.to if self.to is not None else self.target_agent


class HandoffStep(StepType[HandoffConfig]):
    name = "handoff"
    config_model = HandoffConfig
    description = "Hand the conversation to another agent and store its answer."
    retryable = True

    def __init__(self, runtime: AIRuntime | None = None) -> None:
        self.runtime = runtime or AIRuntime()

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: HandoffConfig = step.config  # type: ignore[assignment]
        target = ctx.resolve(config.target) if config.target is not None else None
        if target is None or target == "":
            target = ctx.get("_handoff_to")
        if not isinstance(target, str) or not target:
            raise StepFailed(
                f"handoff '{step.id}' has no target: set 'to' (or 'target_agent'), or run it "
                "after an agent step that set '_handoff_to'",
                step=step.id,
            )
        source = ctx.resolve(config.from_) if config.from_ is not None else None
        if source is None:
            source = ctx.get("_current_agent")
        reason = ctx.resolve(config.reason)

        def prompt() -> str:
            if config.prompt is not None:
                return expr.render(ctx.resolve(config.prompt))
            return _handoff_message(source, reason, ctx.resolve(config.context))

        loop = AgentLoop(
            ctx,
            self.runtime,
            step_id=step.id,
            agent_id=target,
            prompt=prompt,
            max_turns=config.max_turns,
            max_handoffs=config.max_handoffs,
            input_guardrails=config.input_guardrails,
            output_guardrails=config.output_guardrails,
        )
        outcome = await loop.run()
        done = finish(ctx, step.id, config, outcome)
        if isinstance(outcome, LoopResult):
            stamp = datetime.fromtimestamp(ctx.now(), UTC).isoformat()
            ctx.set(
                "_handoff_context",
                {"from": source, "to": target, "reason": reason, "timestamp": stamp},
            )
        return done

    def targets(self, step: StepDef) -> list[tuple[str, str]]:
        config: HandoffConfig = step.config  # type: ignore[assignment]
        return [("on_fail", config.on_fail)] if config.on_fail is not None else []

    def outputs(self, step: StepDef) -> list[str]:
        config: HandoffConfig = step.config  # type: ignore[assignment]
        names = [config.output] if config.output else []
        guarded = [FAILURE_VARIABLE] if config.on_fail is not None else []
        return [*names, "_current_agent", "_handoff_to", "_usage", "_handoff_context", *guarded]

    def check(self, step: StepDef, workflow: WorkflowDefinition) -> list[tuple[str, str]]:
        config: HandoffConfig = step.config  # type: ignore[assignment]
        target = config.target
        if target is None or expr.references(target) or "$" in target:
            return guard_problems(workflow, config, None)  # the target is decided at run time
        label = "to" if config.to is not None else "target_agent"
        pool = self.runtime.mcp_pool
        servers = list(pool.servers) if pool is not None else []
        problems = agent_problems(workflow, target, self.runtime.tools.names(), servers)
        return [(label, p) for p in problems] + guard_problems(workflow, config, target)


def _handoff_message(source: Any, reason: Any, context: Any) -> str:
    """The first message the target agent sees when the step has no ``prompt``."""
    lines = [
        f"The conversation was handed over to you by agent '{source}'."
        if source
        else "The conversation was handed over to you."
    ]
    if reason:
        lines.append(f"Reason: {expr.render(reason)}")
    if context is not None:
        text = context if isinstance(context, str) else json.dumps(context, indent=2, default=str)
        lines.append(f"Context:\n{text}")
    lines.append("Please take it from here.")
    return "\n\n".join(lines)
