"""The provider-neutral model protocol of dwf_ai.

Conversations are lists of plain JSON messages, so the engine can journal each message once and a
resumed agent continues without calling the model again:

* ``{"role": "system", "content": str}``
* ``{"role": "user", "content": str}``
* ``{"role": "assistant", "content": str | None, "tool_calls": [{"id", "name", "arguments"}]}``
  where ``arguments`` is the raw JSON text the model produced (it may be invalid);
* ``{"role": "tool", "tool_call_id": str, "name": str, "content": str, "is_error": bool}``.

A provider (OpenAI, Anthropic, a test double) turns a :class:`ModelRequest` into its own wire
format and its answer into a :class:`ModelResponse`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Message",
    "Model",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "ModerationResult",
    "Moderator",
    "ToolCall",
    "ToolSpec",
    "Usage",
]

Message = dict[str, Any]


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: its name, description and JSON Schema of arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model made. ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ``ValueError`` with a readable reason otherwise."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"the arguments are not valid JSON: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise ValueError(f"the arguments must be a JSON object, got {type(value).__name__}")
        return value

    def to_message_part(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ModelSettings:
    """Sampling and limits; ``None`` leaves the provider's default."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRequest:
    """One call to a model: the whole conversation so far and what it may use."""

    model: str
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    settings: ModelSettings = field(default_factory=ModelSettings)
    #: A JSON Schema the final answer must match (structured output), or ``None``.
    output_schema: dict[str, Any] | None = None


@dataclass
class ModelResponse:
    """The model's turn: text and/or tool calls."""

    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    #: Why the turn ended, the same word for every provider: ``"stop"``, ``"tool_calls"``,
    #: ``"length"``, ``"content_filter"``, ``"refusal"`` (otherwise the provider's own word).
    finish_reason: str | None = None
    model: str | None = None

    def to_message(self) -> Message:
        """The assistant message to append to the conversation."""
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [c.to_message_part() for c in self.tool_calls]
        return message


class ModelError(Exception):
    """A provider refused or failed the request (after its own retries). ``retryable`` says
    whether trying again later could help; ``status`` is the HTTP status when there is one;
    ``code`` names the cause in a stable way (``"missing_api_key"``, ``"authentication"``,
    ``"model_not_found"``, ``"context_length_exceeded"``, ``"rate_limited"``, ...) or is
    ``None``."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.code = code


@runtime_checkable
class Model(Protocol):
    """A chat model. Implementations must not log prompts, answers or keys."""

    name: str

    async def respond(self, request: ModelRequest) -> ModelResponse: ...


@dataclass(frozen=True)
class ModerationResult:
    """What a moderation check found. ``categories`` names the flagged categories in the
    provider's spelling (``"harassment"``, ``"violence/graphic"``); ``scores`` has every score."""

    flagged: bool
    categories: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"flagged": self.flagged, "categories": list(self.categories), "scores": self.scores}


@runtime_checkable
class Moderator(Protocol):
    """Something that classifies text as harmful or not (the OpenAI moderation endpoint, a test
    double). Implementations must not log the text."""

    async def moderate(self, text: str) -> ModerationResult: ...
