"""``call``: invoke a method of a registered service, with timeout and retries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dwf.dsl.model import StepDef
from dwf.errors import NonRetryableError
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext


class OutputSchemaError(NonRetryableError):
    """A service result does not match the step's declared output schema."""


class OutputSpec(BaseModel):
    """``output: {key: name, schema: {...}}`` (``name`` is accepted for ``key``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    key: str = Field(alias="key")
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")

    @model_validator(mode="before")
    @classmethod
    def _name_is_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" in data and "key" not in data:
            data = {("key" if k == "name" else k): v for k, v in data.items()}
        return data


class RetryPolicy(StepConfig):
    """Fields shared by steps the engine retries: per-attempt ``timeout`` (seconds), extra
    attempts ``retries``, and the delay ``retry_delay * retry_backoff ** (attempt - 1)``."""

    timeout: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0, le=100)
    retry_delay: float = Field(default=1.0, ge=0)
    retry_backoff: float = Field(default=2.0, ge=1)


class CallConfig(StepConfig):
    service: str
    method: str
    input: Any = None
    output: str | OutputSpec | None = None
    timeout: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0, le=100)
    retry_delay: float = Field(default=1.0, ge=0)
    retry_backoff: float = Field(default=2.0, ge=1)

    @property
    def output_key(self) -> str | None:
        return self.output.key if isinstance(self.output, OutputSpec) else self.output

    @property
    def output_schema(self) -> dict[str, Any] | None:
        return self.output.schema_ if isinstance(self.output, OutputSpec) else None


class CallStep(StepType[CallConfig]):
    name = "call"
    config_model = CallConfig
    description = "Call a method of a registered service."
    retryable = True

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: CallConfig = step.config  # type: ignore[assignment]
        payload = ctx.resolve(config.input)
        result = await ctx.call_service(config.service, config.method, payload)
        schema = config.output_schema
        if schema is not None:
            _check_schema(step.id, result, schema)
        if config.output_key is not None:
            ctx.set(config.output_key, result)
        return Continue(output=result)

    def output_schema(self, step: StepDef) -> Mapping[str, Any] | None:
        config: CallConfig = step.config  # type: ignore[assignment]
        return config.output_schema

    def check(self, step: StepDef, workflow: Any) -> list[tuple[str, str]]:
        config: CallConfig = step.config  # type: ignore[assignment]
        schema = config.output_schema
        if schema is None:
            return []
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            return [("output.schema", f"invalid JSON Schema: {exc.message}")]
        return []


def _check_schema(step_id: str, value: Any, schema: Mapping[str, Any]) -> None:
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        detail = "; ".join(
            f"{'/'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors[:5]
        )
        raise OutputSchemaError(
            f"the result of step '{step_id}' does not match its output schema: {detail}",
            step=step_id,
        )
