"""``workflow``: run another workflow as a child execution linked to this one.

The child has its own execution id, checkpoints and pinned definition. A halt inside the child
halts the parent; resuming the parent resumes the child exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from dwf.dsl.model import StepDef
from dwf.errors import StepFailed
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext


class WorkflowConfig(StepConfig):
    workflow_id: str
    input: Any = None
    output: str | None = None
    #: Deadline of the child execution, in seconds from its start.
    timeout: float | None = Field(default=None, gt=0)


class WorkflowStep(StepType[WorkflowConfig]):
    name = "workflow"
    config_model = WorkflowConfig
    description = "Run another workflow as a child execution."

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: WorkflowConfig = step.config  # type: ignore[assignment]
        payload = ctx.resolve(config.input) if config.input is not None else {}
        if not isinstance(payload, Mapping):
            raise StepFailed(
                f"step '{step.id}': the sub-workflow 'input' must be a mapping, got "
                f"{type(payload).__name__}",
                step=step.id,
            )
        result = await ctx.run_workflow(config.workflow_id, payload)
        if result.status == "completed":
            if config.output is not None:
                ctx.set(config.output, result.output)
            return Continue(output=result.output)
        if result.status == "halted" and result.halt is not None:
            return result.halt
        message = (result.error or {}).get("message", result.status)
        raise StepFailed(
            f"sub-workflow '{config.workflow_id}' (execution {result.execution_id}) "
            f"{result.status}: {message}",
            step=step.id,
            child_execution_id=result.execution_id,
        )
