"""``guardrail``: check a text and go on, go to ``on_fail``, or fail the step.

::

    - id: moderate_input
      type: guardrail
      content: $input.message          # or `input:`; any value, rendered as text
      checks: [moderation, prompt_injection, {type: pii, redact: true}]
      output: safe_message             # the text after redaction (optional)
      on_fail: rejected                # sees $_guardrail_failure = {check, category, reason, ...}
      next: triage

Without ``on_fail`` a failure fails the step (``GuardrailFailed``), which ``on_error`` can catch.
A passing guardrail clears a ``$_guardrail_failure`` left by an earlier one. The audit entry (the
step's output) lists every check that ran and what it found, never the matched text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from dwf import expr
from dwf.dsl.model import StepDef
from dwf.errors import StepFailed
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext
from dwf_ai.guardrails.checks import CheckList, GuardrailFailure, run_checks
from dwf_ai.guardrails.moderation import DefaultModerator, ModeratorLike

if TYPE_CHECKING:
    from dwf_ai.models.config import ProviderConfig

__all__ = ["FAILURE_VARIABLE", "GuardrailConfig", "GuardrailFailed", "GuardrailStep"]

#: The variable an ``on_fail`` step reads.
FAILURE_VARIABLE = "_guardrail_failure"


class GuardrailConfig(StepConfig):
    """``content`` (or ``input``): the value to check; ``checks``; ``on_fail``; ``output``."""

    content: Any = None
    input: Any = None
    checks: CheckList = Field(default_factory=list)
    on_fail: str | None = None
    #: A variable that receives the checked text (masked when a ``pii`` check redacts).
    output: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> GuardrailConfig:
        if self.content is None and self.input is None:
            raise ValueError(
                "a guardrail needs 'content' (or 'input'): the text to check, e.g. "
                "'content: $input.message'"
            )
        if self.content is not None and self.input is not None:
            raise ValueError("give 'content' or 'input', not both")
        return self


class GuardrailFailed(StepFailed):
    """A guardrail failed and its step has no ``on_fail``; ``check``, ``category`` and
    ``reason`` say why."""


class GuardrailStep(StepType[GuardrailConfig]):
    """The ``guardrail`` step type.

    Args:
        moderator: What ``moderation`` checks ask: an object with ``async moderate(text)``
            (an :class:`~dwf_ai.models.OpenAIModel`, a test double) or a function. Default: the
            OpenAI moderation endpoint, built on first use from ``config`` or the environment.
        config: Provider settings for the default moderator.
    """

    name = "guardrail"
    config_model = GuardrailConfig
    description = (
        "Check text for prompt injection, personal data, harmful content, a pattern or its "
        "length; on failure go to on_fail."
    )

    def __init__(
        self, moderator: ModeratorLike | None = None, *, config: ProviderConfig | None = None
    ) -> None:
        self.moderator: ModeratorLike = (
            moderator if moderator is not None else DefaultModerator(config)
        )

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: GuardrailConfig = step.config  # type: ignore[assignment]
        source = config.content if config.content is not None else config.input
        text = expr.render(ctx.resolve(source))
        result = await run_checks(config.checks, text, moderator=self.moderator)
        audit = result.to_dict()
        if result.redacted:
            audit["text"] = result.text
        if result.passed:
            if ctx.has(FAILURE_VARIABLE):
                ctx.delete(FAILURE_VARIABLE)
            if config.output is not None:
                ctx.set(config.output, result.text)
            return Continue(output=audit)
        failure = result.failure
        assert failure is not None
        if config.on_fail is not None:
            ctx.set(FAILURE_VARIABLE, failure.to_dict())
            return Continue(next=config.on_fail, output=audit)
        raise _failed(step.id, failure)

    def targets(self, step: StepDef) -> list[tuple[str, str]]:
        config: GuardrailConfig = step.config  # type: ignore[assignment]
        return [("on_fail", config.on_fail)] if config.on_fail is not None else []

    def outputs(self, step: StepDef) -> list[str]:
        config: GuardrailConfig = step.config  # type: ignore[assignment]
        names = [config.output] if config.output is not None else []
        if config.on_fail is not None:
            names.append(FAILURE_VARIABLE)
        return names

    def reads(self, step: StepDef) -> list[tuple[str, str]]:
        # Only the checked value holds references; a regex such as `\$\d+` is not one.
        config: GuardrailConfig = step.config  # type: ignore[assignment]
        field = "content" if config.content is not None else "input"
        return [(field, ref) for ref in expr.references(getattr(config, field))]


def _failed(step_id: str, failure: GuardrailFailure) -> GuardrailFailed:
    category = f", category '{failure.category}'" if failure.category else ""
    return GuardrailFailed(
        f"Guardrail failed: {failure.reason} (step '{step_id}', check '{failure.check}'"
        f"{category}); add 'on_fail: <step id>' to the guardrail step to handle it",
        step=step_id,
        check=failure.check,
        category=failure.category,
        reason=failure.reason,
    )
