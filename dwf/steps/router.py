"""``router``: go to the first route whose condition holds, else ``default``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dwf import expr
from dwf.dsl.model import StepDef
from dwf.errors import StepFailed
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext

Operator = Literal[
    "eq", "neq", "gt", "gte", "lt", "lte", "contains", "starts_with", "ends_with",
    "matches", "in", "not_in", "exists", "empty", "truthy", "falsy",
]  # fmt: skip


class Condition(BaseModel):
    """``{field, op, value}``: ``field`` is a variable path (``$`` optional), ``op`` defaults
    to ``eq``, ``value`` may hold references."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    op: Operator = "eq"
    value: Any = None

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k == "value"}
        return data

    @property
    def path(self) -> str:
        return self.field.removeprefix("$")


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: Condition
    then: str


class RouterConfig(StepConfig):
    routes: list[Route] = Field(default_factory=list)
    default: str | None = None


class RouterStep(StepType[RouterConfig]):
    name = "router"
    config_model = RouterConfig
    description = "Branch on conditions."

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: RouterConfig = step.config  # type: ignore[assignment]
        for index, route in enumerate(config.routes):
            when = route.when
            if ctx.condition(when.path, when.op, when.value):
                return Continue(next=route.then, output={"route": index, "next": route.then})
        if config.default is not None:
            return Continue(
                next=config.default, output={"route": "default", "next": config.default}
            )
        raise StepFailed(
            f"no route of router '{step.id}' matched and it has no 'default'; add a default route",
            step=step.id,
        )

    def targets(self, step: StepDef) -> list[tuple[str, str]]:
        config: RouterConfig = step.config  # type: ignore[assignment]
        found = [(f"routes[{i}].then", r.then) for i, r in enumerate(config.routes)]
        if config.default is not None:
            found.append(("default", config.default))
        return found

    def falls_through(self, step: StepDef) -> bool:
        return False

    def reads(self, step: StepDef) -> list[tuple[str, str]]:
        config: RouterConfig = step.config  # type: ignore[assignment]
        found: list[tuple[str, str]] = []
        for i, route in enumerate(config.routes):
            found.append((f"routes[{i}].when.field", route.when.path))
            found.extend((f"routes[{i}].when.value", r) for r in expr.references(route.when.value))
        return found
