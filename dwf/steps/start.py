"""``start``: the entry step. The run input is validated against ``inputs`` before any step runs
(required inputs, types, defaults applied first), so ``start`` itself only marks the entry."""

from __future__ import annotations

from dwf.dsl.model import StepDef
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext


class StartConfig(StepConfig):
    #: Accepted for compatibility; input validation always happens.
    validate_input: bool = True


class StartStep(StepType[StartConfig]):
    name = "start"
    config_model = StartConfig
    description = "Entry point of the workflow."

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        return Continue()
