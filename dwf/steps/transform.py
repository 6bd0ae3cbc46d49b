"""``transform``: reshape data with a chain of operations (map, select, sum, ...)."""

from __future__ import annotations

from typing import Any

from dwf import transform_ops
from dwf.dsl.model import StepDef
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext


class TransformConfig(StepConfig):
    #: A variable path, with or without ``$``; absent means all user variables.
    input: str | None = None
    expression: dict[str, Any]
    output: str


class TransformStep(StepType[TransformConfig]):
    name = "transform"
    config_model = TransformConfig
    description = "Transform data with map/select/sum/... operations."

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: TransformConfig = step.config  # type: ignore[assignment]
        if config.input is None:
            data: Any = {k: v for k, v in ctx.variables.items() if not k.startswith("_")}
        else:
            data = ctx.lookup(config.input.removeprefix("$"))
        result = transform_ops.apply_transform(data, config.expression, step_id=step.id)
        ctx.set(config.output, result)
        return Continue(output=result)

    def reads(self, step: StepDef) -> list[tuple[str, str]]:
        config: TransformConfig = step.config  # type: ignore[assignment]
        return [("input", config.input.removeprefix("$"))] if config.input else []

    def check(self, step: StepDef, workflow: Any) -> list[tuple[str, str]]:
        config: TransformConfig = step.config  # type: ignore[assignment]
        return [("expression", p) for p in transform_ops.check_expression(config.expression)]
