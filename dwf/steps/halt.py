"""``halt``: stop until someone resumes; ``$response`` holds their answer afterwards."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from dwf.dsl.model import StepDef
from dwf.extensions import DEFAULT_NEXT, Halt, Outcome, StepConfig, StepType
from dwf.runtime import StepContext


class HaltConfig(StepConfig):
    reason: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    resume_step: str | None = None


class HaltStep(StepType[HaltConfig]):
    name = "halt"
    config_model = HaltConfig
    description = "Stop until resumed; the answer is available as $response."

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: HaltConfig = step.config  # type: ignore[assignment]
        reason = ctx.resolve(config.reason) if config.reason is not None else None
        data = dict(ctx.resolve(config.data))
        # `reason` and `halted_at` are dwf's: the step's own data cannot override them.
        data["reason"] = reason if reason not in (None, "") else "Halted"
        data["halted_at"] = datetime.fromtimestamp(ctx.now(), UTC).isoformat()
        resume_at = config.resume_step if config.resume_step is not None else DEFAULT_NEXT
        return Halt(
            data=data, prompt=reason if isinstance(reason, str) else None, resume_at=resume_at
        )

    def resume_targets(self, step: StepDef) -> list[tuple[str, str]]:
        config: HaltConfig = step.config  # type: ignore[assignment]
        target = config.resume_step or step.next
        return [("resume_step" if config.resume_step else "next", target)] if target else []

    def falls_through(self, step: StepDef) -> bool:
        return False

    def outputs(self, step: StepDef) -> list[str]:
        return ["response", "approved"]
