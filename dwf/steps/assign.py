"""``assign``: set variables, in order; later values may reference earlier ones."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from dwf import expr
from dwf.dsl.model import StepDef
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext


class AssignConfig(StepConfig):
    set: dict[str, Any] = {}

    @field_validator("set")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not name.isidentifier():
                raise ValueError(
                    f"variable name '{name}' must be an identifier (letters, digits, '_')"
                )
            if name == "input":
                raise ValueError("'input' is reserved for the run input and cannot be assigned")
        return value


class AssignStep(StepType[AssignConfig]):
    name = "assign"
    config_model = AssignConfig
    description = "Set variables."

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: AssignConfig = step.config  # type: ignore[assignment]
        assigned = {}
        for name, raw in config.set.items():
            assigned[name] = ctx.resolve(raw)
            ctx.set(name, assigned[name])
        # The output (audit entry, loop iteration result) is what was assigned.
        return Continue(output=assigned)

    def reads(self, step: StepDef) -> list[tuple[str, str]]:
        config: AssignConfig = step.config  # type: ignore[assignment]
        found: list[tuple[str, str]] = []
        earlier: set[str] = set()
        for name, raw in config.set.items():
            # Later values may read earlier ones of the same step.
            found.extend(
                (f"set.{name}", ref)
                for ref in expr.references(raw)
                if ref.split(".", 1)[0] not in earlier
            )
            earlier.add(name)
        return found

    def outputs(self, step: StepDef) -> list[str]:
        config: AssignConfig = step.config  # type: ignore[assignment]
        return list(config.set)
