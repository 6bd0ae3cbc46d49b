"""The typed workflow definition: what a YAML file becomes after loading."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from dwf.errors import Diagnostic

if TYPE_CHECKING:
    from dwf.dsl.yaml_source import Mark, Path, SourceDocument
    from dwf.extensions import StepConfig

__all__ = ["INPUT_TYPES", "InputSpec", "StepDef", "WorkflowDefinition"]

INPUT_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any")


class InputSpec(BaseModel):
    """One declared input. ``type: any`` (the default) accepts every value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["string", "integer", "number", "boolean", "array", "object", "any"] = "any"
    required: bool = True
    default: Any = None
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        if data is None:
            return {}
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of this input (used for MCP tool schemas)."""
        schema: dict[str, Any] = {}
        if self.type != "any":
            schema["type"] = self.type
        if self.description:
            schema["description"] = self.description
        if self.default is not None:
            schema["default"] = self.default
        return schema


class _Header(BaseModel):
    """The scalar top-level keys, validated together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    version: str | None = None
    description: str | None = None
    timeout: float | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # `version: 1.0` is a YAML float; users mean the text "1.0".
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive number of seconds")
        return value

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class StepDef:
    """One step: its id, type, typed config and the common keys.

    ``source_path`` locates the step mapping in its document (e.g. ``("steps", 3)`` or
    ``("steps", 3, "do", 0)``) for error messages. (A plain class, not a dataclass, so that
    pydantic config models hold nested steps as opaque objects.)
    """

    __slots__ = ("config", "id", "next", "on_error", "source_path", "type")

    def __init__(
        self,
        id: str,
        type: str,
        config: StepConfig,
        next: str | None = None,
        on_error: str | None = None,
        source_path: tuple[str | int, ...] = (),
    ) -> None:
        self.id = id
        self.type = type
        self.config = config
        self.next = next
        self.on_error = on_error
        self.source_path = source_path

    def __repr__(self) -> str:
        return f"StepDef(id={self.id!r}, type={self.type!r})"


@dataclass(frozen=True, eq=False)
class WorkflowDefinition:
    """A loaded workflow. ``raw`` is the document as plain data; ``hash`` its content hash,
    which executions are pinned to."""

    id: str
    name: str
    steps: list[StepDef]
    version: str | None = None
    description: str | None = None
    timeout: float | None = None
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    source: SourceDocument | None = None
    warnings: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.id: s for s in self.steps})

    @property
    def file(self) -> str | None:
        return self.source.file if self.source is not None else None

    @property
    def hash(self) -> str:
        cached: str | None = self.__dict__.get("_hash")
        if cached is None:
            cached = "sha256:" + hashlib.sha256(self.canonical_json().encode()).hexdigest()
            object.__setattr__(self, "_hash", cached)
        return cached

    def canonical_json(self) -> str:
        """The document as compact JSON: what the store keeps for pinning. Key order is kept
        (it is meaningful: assignments and transform operations run in mapping order)."""
        cached: str | None = self.__dict__.get("_canonical")
        if cached is None:
            cached = json.dumps(self.raw, separators=(",", ":"), ensure_ascii=False)
            object.__setattr__(self, "_canonical", cached)
        return cached

    @property
    def uses_history(self) -> bool:
        """Whether any step reads ``$history`` (the engine then loads the timeline)."""
        return "$history" in self.canonical_json()

    def step(self, step_id: str) -> StepDef | None:
        """The top-level step with that id."""
        by_id: dict[str, StepDef] = self.__dict__["_by_id"]
        return by_id.get(step_id)

    @property
    def first_step(self) -> StepDef | None:
        return self.steps[0] if self.steps else None

    def all_steps(self) -> Iterator[StepDef]:
        """Every step, nested ones included, depth first."""
        stack = list(reversed(self.steps))
        while stack:
            step = stack.pop()
            yield step
            nested: list[StepDef] = []
            for name in type(step.config).model_fields:
                value = getattr(step.config, name)
                if isinstance(value, list) and value and all(isinstance(v, StepDef) for v in value):
                    nested.extend(value)
            stack.extend(reversed(nested))

    def mark(self, path: Path) -> Mark | None:
        return self.source.mark(path) if self.source is not None else None

    def input_schema(self) -> dict[str, Any]:
        """A JSON Schema object for the run input, from ``inputs``."""
        required = [n for n, s in self.inputs.items() if s.required and s.default is None]
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {n: s.json_schema() for n, s in self.inputs.items()},
        }
        if required:
            schema["required"] = required
        return schema
