"""``approval``: ask a person to approve or reject; optional timeout with ``on_timeout``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from dwf.dsl.model import StepDef
from dwf.errors import StepFailed
from dwf.extensions import Continue, Halt, Outcome, StepConfig, StepType
from dwf.runtime import StepContext


class ApprovalConfig(StepConfig):
    prompt: str
    context: Any = None
    approvers: list[str] | None = None
    on_reject: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    on_timeout: str | None = None
    #: A variable that receives the decision: ``{decision, approved, by, response}``.
    output: str | None = None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class ApprovalStep(StepType[ApprovalConfig]):
    name = "approval"
    config_model = ApprovalConfig
    description = "Wait for a person to approve or reject."

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: ApprovalConfig = step.config  # type: ignore[assignment]
        requested_at = ctx.state_get("requested_at")
        if requested_at is None:
            requested_at = ctx.now()
            ctx.state_set("requested_at", requested_at)
        expires_at = requested_at + config.timeout if config.timeout is not None else None

        decision = ctx.resume
        timed_out = expires_at is not None and ctx.now() >= expires_at
        if decision is not None and (decision.timed_out or timed_out):
            ctx.state_delete("requested_at")
            record: dict[str, Any] = {
                "decision": "timed_out",
                "approved": None,
                "by": None,
                "response": None,
            }
            if config.output is not None:
                ctx.set(config.output, record)
            if config.on_timeout is not None:
                return Continue(next=config.on_timeout, output=record)
            raise StepFailed(
                f"approval '{step.id}' timed out after {config.timeout:g}s without a decision "
                "and has no 'on_timeout' step",
                step=step.id,
            )
        if decision is not None and decision.approved is not None:
            ctx.state_delete("requested_at")
            if decision.response is not None:
                ctx.set("response", decision.response)
            record = {
                "decision": "approved" if decision.approved else "rejected",
                "approved": decision.approved,
                "by": decision.by,
                "response": decision.response,
            }
            if config.output is not None:
                ctx.set(config.output, record)
            if decision.approved:
                return Continue(output=record)
            if config.on_reject is not None:
                return Continue(next=config.on_reject, output=record)
            raise StepFailed(
                f"approval '{step.id}' was rejected and has no 'on_reject' step", step=step.id
            )

        prompt = ctx.resolve(config.prompt)
        data = {
            "type": "approval",
            "prompt": prompt,
            "context": ctx.resolve(config.context),
            "approvers": config.approvers,
            "timeout": config.timeout,
            "requested_at": _iso(requested_at),
            "expires_at": _iso(expires_at) if expires_at is not None else None,
        }
        return Halt(
            data=data,
            prompt=prompt if isinstance(prompt, str) else str(prompt),
            reenter=True,
            expires_at=expires_at,
        )

    def targets(self, step: StepDef) -> list[tuple[str, str]]:
        config: ApprovalConfig = step.config  # type: ignore[assignment]
        found = []
        if config.on_reject is not None:
            found.append(("on_reject", config.on_reject))
        if config.on_timeout is not None:
            found.append(("on_timeout", config.on_timeout))
        return found

    def outputs(self, step: StepDef) -> list[str]:
        # `$response` is set only when the decision came with one; not promised to the validator.
        config: ApprovalConfig = step.config  # type: ignore[assignment]
        return [config.output] if config.output else []
