"""Input and output guardrails of the ``agent`` and ``handoff`` steps.

The checks are those of the ``guardrail`` step (:func:`dwf_ai.guardrails.run_checks`). The
input checks run on the rendered prompt before the first model call, and the model sees the
text after them (masked when a ``pii`` check redacts). The output checks run on the answer
before it is stored. Each result is journaled in the step's state (``g.input``, ``g.output``)
before anything else happens, so a resumed or retried step does not ask the moderation endpoint
again: it reuses the verdict.

A failure goes to the step's ``on_fail`` with ``$_guardrail_failure`` set (its ``stage`` says
``input`` or ``output``), or fails the step with :class:`AgentGuardrailFailed`, which is not
retried (the journaled verdict would fail again).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from dwf.errors import NonRetryableError
from dwf.extensions import Continue, StepConfig
from dwf.runtime import StepContext
from dwf_ai.guardrails.checks import Check, CheckList, GuardrailFailure, run_checks
from dwf_ai.guardrails.moderation import ModeratorLike
from dwf_ai.guardrails.step import FAILURE_VARIABLE, GuardrailFailed

if TYPE_CHECKING:
    from dwf_ai.steps._loop import LoopResult

__all__ = [
    "AgentGuardrailFailed",
    "Blocked",
    "GuardedConfig",
    "Stage",
    "answer_text",
    "blocked_outcome",
    "check_stage",
    "clear_failure",
    "restore_answer",
]

Stage = Literal["input", "output"]


class GuardedConfig(StepConfig):
    """The guardrail keys shared by the ``agent`` and ``handoff`` steps."""

    input_guardrails: CheckList = Field(default_factory=list)
    output_guardrails: CheckList = Field(default_factory=list)
    #: Where to go when a guardrail fails (it sees ``$_guardrail_failure``); without it the
    #: step fails with ``AgentGuardrailFailed``.
    on_fail: str | None = None


class AgentGuardrailFailed(GuardrailFailed, NonRetryableError):
    """An input or output guardrail of an agent step failed and the step has no ``on_fail``;
    ``stage``, ``check``, ``category`` and ``reason`` say why."""


@dataclass(frozen=True)
class Blocked:
    """An agent loop stopped by a guardrail: the ``stage``, the journaled ``verdict`` (the
    ``GuardrailResult.to_dict()`` form plus ``text``), the ``agent`` whose prompt or answer
    failed, the ``guardrails`` verdicts for the audit entry and, for an answer that failed, the
    loop's ``result`` (its usage still counts)."""

    stage: Stage
    verdict: dict[str, Any]
    agent: str
    guardrails: dict[str, Any] = field(default_factory=dict)
    result: LoopResult | None = None

    @property
    def failure(self) -> dict[str, Any]:
        found: dict[str, Any] = self.verdict["failure"]
        return found


async def check_stage(
    ctx: StepContext,
    stage: Stage,
    checks: Sequence[Check],
    text: str,
    moderator: ModeratorLike | None,
    *,
    agent: str,
    save: Callable[[], Awaitable[None]],
) -> dict[str, Any] | None:
    """Run ``checks`` on ``text`` once: the journaled verdict when there is one, else a new one,
    journaled and committed (``await save()``) at once. ``None`` when there are no checks.

    The verdict is ``GuardrailResult.to_dict()`` plus ``text`` (after redaction)."""
    if not checks:
        return None
    key = f"g.{stage}"
    verdict: dict[str, Any] | None = ctx.state_get(key)
    if verdict is None:
        result = await run_checks(checks, text, moderator=moderator, stage=stage)
        verdict = {**result.to_dict(), "text": result.text}
        ctx.state_set(key, verdict)
        await save()
        ctx.emit(
            "agent.guardrail",
            agent=agent,
            stage=stage,
            passed=result.passed,
            redacted=result.redacted,
            failure=verdict["failure"],
        )
    return verdict


def answer_text(answer: Any) -> str:
    """An answer as the text output guardrails check: strings as they are, the rest as JSON."""
    if isinstance(answer, str):
        return answer
    return json.dumps(answer, ensure_ascii=False, default=str)


def restore_answer(original: Any, text: str) -> Any:
    """The answer after an output guardrail redacted ``text``: the text for a text answer, the
    JSON value it still parses as for a structured one (else the text)."""
    if isinstance(original, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def clear_failure(ctx: StepContext) -> None:
    """A step whose guardrails passed clears the failure an earlier guardrail left."""
    if ctx.has(FAILURE_VARIABLE):
        ctx.delete(FAILURE_VARIABLE)


def blocked_outcome(
    ctx: StepContext, step_id: str, on_fail: str | None, blocked: Blocked, audit: dict[str, Any]
) -> Continue:
    """Route a guardrail failure to ``on_fail`` (``$_guardrail_failure`` set, the audit entry
    recording it), or raise :class:`AgentGuardrailFailed`."""
    failure = blocked.failure
    ctx.emit("agent.blocked", agent=blocked.agent, stage=blocked.stage, failure=failure)
    if on_fail is None:
        raise _failed(step_id, blocked.stage, failure)
    ctx.set(FAILURE_VARIABLE, failure)
    return Continue(next=on_fail, output={**audit, "guardrail_failure": failure})


def _failed(step_id: str, stage: Stage, failure: dict[str, Any]) -> AgentGuardrailFailed:
    parsed = GuardrailFailure(
        check=failure["check"],
        category=failure.get("category"),
        reason=failure["reason"],
        index=failure.get("index", 0),
    )
    category = f", category '{parsed.category}'" if parsed.category else ""
    where = "prompt" if stage == "input" else "answer"
    return AgentGuardrailFailed(
        f"Guardrail failed on the agent's {where}: {parsed.reason} (step '{step_id}', "
        f"{stage}_guardrails check '{parsed.check}'{category}); add 'on_fail: <step id>' to the "
        "step to handle it",
        step=step_id,
        stage=stage,
        check=parsed.check,
        category=parsed.category,
        reason=parsed.reason,
    )
