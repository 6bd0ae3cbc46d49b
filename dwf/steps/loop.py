"""``loop``: repeat a body of steps over a list (``over``) or while a condition holds.

Progress is durable: the iteration counter and each iteration's result are checkpointed, so a
halt or a crash inside iteration 7 resumes inside iteration 7, at the step where it stopped.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from dwf import expr
from dwf.dsl.model import StepDef
from dwf.errors import StepFailed
from dwf.extensions import BodySpec, Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext
from dwf.steps.router import Condition


class LoopConfig(StepConfig):
    over: Any = None
    as_: str = Field(default="item", alias="as")
    index_as: str = "index"
    while_: Condition | None = Field(default=None, alias="while")
    do: list[StepDef] = Field(default_factory=list)
    output: str | None = None
    max: int = Field(default=100, ge=0)
    on_exhausted: str | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> LoopConfig:
        if (self.over is None) == (self.while_ is None):
            raise ValueError(
                "a loop needs exactly one of 'over' (a list to iterate) or 'while' (a condition)"
            )
        for name in (self.as_, self.index_as):
            if not name.isidentifier():
                raise ValueError(f"loop variable name '{name}' must be an identifier")
        return self

    @property
    def foreach(self) -> bool:
        return self.over is not None

    def loop_variables(self) -> tuple[str, ...]:
        if self.foreach:
            return (self.as_, self.index_as, "break_loop")
        return ("iteration", "break_loop")


class LoopStep(StepType[LoopConfig]):
    name = "loop"
    config_model = LoopConfig
    description = "Repeat steps for each item of a list, or while a condition holds."
    nested_fields = ("do",)

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: LoopConfig = step.config  # type: ignore[assignment]
        i: int | None = ctx.state_get("i")
        if i is None:
            i = 0
            started = self._start(step, config, ctx)
            if started is not None:
                return started
        items: list[Any] | None = ctx.state_get("items")
        in_progress = ctx.state_get("current")
        while True:
            if items is not None:
                if i >= len(items):
                    break
                ctx.set(config.as_, items[i])
                ctx.set(config.index_as, i)
            else:
                assert config.while_ is not None
                if in_progress != i:
                    cond = config.while_
                    if not ctx.condition(cond.path, cond.op, cond.value):
                        break
                    if i >= config.max:
                        return self._exhausted(step, config, ctx, i)
                ctx.set("iteration", i + 1)
            ctx.state_set("current", i)
            result = await ctx.run_sequence(config.do, frame=str(i))
            if result.halt is not None:
                return result.halt
            ctx.state_set(f"r{i}", result.output)
            i += 1
            ctx.state_set("i", i)
            stop = expr.is_truthy(ctx.get("break_loop"))
            if stop:
                ctx.delete("break_loop")
            await ctx.save()
            if stop:
                break
        return self._finish(config, ctx, i)

    def _start(self, step: StepDef, config: LoopConfig, ctx: StepContext) -> Outcome | None:
        if config.foreach:
            items = ctx.resolve(config.over)
            if not isinstance(items, list):
                raise StepFailed(
                    f"loop '{step.id}': 'over' must be a list, got {expr.type_name(items)} "
                    f"({expr.render(items)[:80]})",
                    step=step.id,
                )
            if len(items) > config.max:
                if config.on_exhausted is not None:
                    return Continue(next=config.on_exhausted, output={"exhausted": True})
                raise StepFailed(
                    f"loop '{step.id}': {len(items)} items exceed 'max' ({config.max}); raise "
                    "'max' or add 'on_exhausted'",
                    step=step.id,
                )
            ctx.state_set("items", items)
        saved = {n: ctx.get(n) for n in config.loop_variables() if ctx.has(n)}
        ctx.state_set("saved", saved)
        if ctx.has("break_loop"):
            # A value from before the loop must not stop it; it is restored afterwards.
            ctx.delete("break_loop")
        ctx.state_set("i", 0)
        return None

    def _results(self, ctx: StepContext, count: int) -> list[Any]:
        return [ctx.state_get(f"r{k}") for k in range(count)]

    def _restore(self, config: LoopConfig, ctx: StepContext) -> None:
        saved: dict[str, Any] = ctx.state_get("saved") or {}
        for name in config.loop_variables():
            if name in saved:
                ctx.set(name, saved[name])
            elif ctx.has(name):
                ctx.delete(name)

    def _finish(self, config: LoopConfig, ctx: StepContext, count: int) -> Outcome:
        results = self._results(ctx, count)
        self._restore(config, ctx)
        if config.output is not None:
            ctx.set(config.output, results)
        return Continue(output={"iterations": count})

    def _exhausted(self, step: StepDef, config: LoopConfig, ctx: StepContext, i: int) -> Outcome:
        if config.on_exhausted is None:
            raise StepFailed(
                f"loop '{step.id}' reached 'max' ({config.max}) iterations while its condition "
                "still held; raise 'max' or add 'on_exhausted'",
                step=step.id,
            )
        outcome = self._finish(config, ctx, i)
        assert isinstance(outcome, Continue)
        outcome.next = config.on_exhausted
        return outcome

    def on_failure(self, step: StepDef, ctx: StepContext) -> None:
        config: LoopConfig = step.config  # type: ignore[assignment]
        self._restore(config, ctx)

    def targets(self, step: StepDef) -> list[tuple[str, str]]:
        config: LoopConfig = step.config  # type: ignore[assignment]
        return [("on_exhausted", config.on_exhausted)] if config.on_exhausted else []

    def bodies(self, step: StepDef) -> list[BodySpec]:
        config: LoopConfig = step.config  # type: ignore[assignment]
        return [BodySpec("do", config.do, scope=config.loop_variables(), exports=False)]

    def reads(self, step: StepDef) -> list[tuple[str, str]]:
        config: LoopConfig = step.config  # type: ignore[assignment]
        found = [("over", r) for r in expr.references(config.over)]
        if config.while_ is not None:
            found.append(("while.field", config.while_.path))
            found.extend(("while.value", r) for r in expr.references(config.while_.value))
        return found
