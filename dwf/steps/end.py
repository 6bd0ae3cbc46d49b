"""``end``: finish the current frame; its resolved ``result`` becomes the workflow output."""

from __future__ import annotations

from typing import Any

from dwf.dsl.model import StepDef
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext


class EndConfig(StepConfig):
    result: Any = None


class EndStep(StepType[EndConfig]):
    name = "end"
    config_model = EndConfig
    description = "Finish the workflow with a result."

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: EndConfig = step.config  # type: ignore[assignment]
        if config.result is not None:
            value = ctx.resolve(config.result)
        else:
            # Without `result`, the output is the user's variables (never dwf's own `_` keys).
            value = {k: v for k, v in ctx.variables.items() if not k.startswith("_")}
        ctx.set("result", value)
        return Continue(next=None, output=value)

    def outputs(self, step: StepDef) -> list[str]:
        return ["result"]

    def falls_through(self, step: StepDef) -> bool:
        return False
