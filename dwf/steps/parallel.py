"""``parallel``: run branches concurrently; ``wait`` is ``all``, ``any`` or a number.

Each branch works on its own copy of the variables; the writes of completed branches are merged
in branch order when the step completes (a later branch wins when two set the same variable).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dwf.dsl.model import StepDef
from dwf.errors import StepFailed
from dwf.extensions import BodySpec, Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext


class ParallelConfig(StepConfig):
    branches: list[StepDef] = Field(default_factory=list)
    wait: Literal["all", "any"] | int = Field(default="all")
    output: str | None = None

    def required(self) -> int:
        count = len(self.branches)
        if self.wait == "all":
            return count
        if self.wait == "any":
            return min(1, count)
        return min(max(self.wait, 1), count)


class ParallelStep(StepType[ParallelConfig]):
    name = "parallel"
    config_model = ParallelConfig
    description = "Run branches concurrently."
    nested_fields = ("branches",)

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: ParallelConfig = step.config  # type: ignore[assignment]
        if not config.branches:
            if config.output is not None:
                ctx.set(config.output, [])
            return Continue(output=[])
        required = config.required()
        results = await ctx.run_branches(
            config.branches, required=required, fail_fast=config.wait == "all"
        )
        completed = [r for r in results if r.status == "completed"]
        if len(completed) >= required:
            outputs = [r.output if r.status == "completed" else None for r in results]
            if config.output is not None:
                ctx.set(config.output, outputs)
            return Continue(output=outputs)
        halted = [r for r in results if r.status == "halted" and r.halt is not None]
        # Halt only if answering could still complete the step; otherwise the person would be
        # asked about a step that has already failed.
        if halted and halted[0].halt is not None and len(completed) + len(halted) >= required:
            return halted[0].halt
        failed = [r for r in results if r.status == "failed"]
        detail = "; ".join(
            f"branch '{r.branch_id}': {(r.error or {}).get('message', 'failed')}" for r in failed
        )
        raise StepFailed(
            f"parallel '{step.id}': {len(completed)} of {len(results)} branches completed, "
            f"{required} required. {detail}",
            step=step.id,
        )

    def bodies(self, step: StepDef) -> list[BodySpec]:
        config: ParallelConfig = step.config  # type: ignore[assignment]
        return [BodySpec("branches", config.branches, sequential=False, exports=True)]

    def check(self, step: StepDef, workflow: object) -> list[tuple[str, str]]:
        config: ParallelConfig = step.config  # type: ignore[assignment]
        problems = []
        if isinstance(config.wait, int) and not 1 <= config.wait <= max(len(config.branches), 1):
            problems.append(
                ("wait", f"'wait: {config.wait}' must be between 1 and the number of branches")
            )
        return problems
