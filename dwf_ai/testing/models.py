"""Test doubles for models: a scripted model and a function model (and a scripted moderator).

A *turn* is what the model says next, written the way a test (Python or YAML) finds natural:

* a string: the final answer, e.g. ``"The refund was issued."``;
* a mapping with any of
  ``content`` (text), ``output`` (any JSON value, sent as JSON text: a structured answer),
  ``tool_calls`` (a list of ``{"name", "arguments", "id"?}``; ``arguments`` a mapping, or a string
  sent as it is, even invalid JSON), ``usage`` (``{"input_tokens", "output_tokens"}``) and
  ``finish_reason``;
* a :class:`~dwf_ai.models.base.ModelResponse`, used as it is;
* an exception instance (e.g. ``ModelError("overloaded", retryable=True)``), raised instead.

In YAML::

    - tool_calls: [{name: lookup_order, arguments: {order_id: "A-1"}}]
    - output: {category: billing, urgent: false}
    - "Your order ships tomorrow."
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from dwf_ai.models.base import (
    ModelError,
    ModelRequest,
    ModelResponse,
    ModerationResult,
    ToolCall,
    Usage,
)

__all__ = [
    "FunctionModel",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ScriptedModerator",
    "Turn",
]

Turn: TypeAlias = str | Mapping[str, Any] | ModelResponse | BaseException
_TURN_KEYS = ("content", "output", "tool_calls", "usage", "finish_reason")


class ScriptExhaustedError(ModelError):
    """A scripted double was asked for more turns than it was given."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="script_exhausted")


@dataclass(frozen=True)
class ScriptedCall:
    """A tool call as scripted; ``id`` is ``None`` when the script left it to the double."""

    id: str | None
    name: str
    arguments: str


@dataclass(frozen=True)
class ScriptedTurn:
    """A turn in one checked shape (see the module docstring for the shapes it comes from)."""

    content: str | None = None
    tool_calls: tuple[ScriptedCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    error: BaseException | None = None

    def to_response(self, new_id: Callable[[], str], model: str | None) -> ModelResponse:
        if self.error is not None:
            raise self.error
        calls = [ToolCall(c.id or new_id(), c.name, c.arguments) for c in self.tool_calls]
        finish = self.finish_reason or ("tool_calls" if calls else "stop")
        usage = Usage(self.usage.input_tokens, self.usage.output_tokens) if self.usage else Usage()
        return ModelResponse(self.content, calls, usage, finish, model)


def normalize_turn(turn: Turn, where: str = "turn") -> ScriptedTurn:
    """Check ``turn`` and bring it to one shape; a bad turn is a ``ValueError`` naming ``where``."""
    if isinstance(turn, BaseException):
        return ScriptedTurn(error=turn)
    if isinstance(turn, str):
        return ScriptedTurn(content=turn)
    if isinstance(turn, ModelResponse):
        calls = tuple(ScriptedCall(c.id, c.name, c.arguments) for c in turn.tool_calls)
        return ScriptedTurn(turn.content, calls, turn.usage, turn.finish_reason)
    if not isinstance(turn, Mapping):
        raise ValueError(
            f"{where}: a turn is a string, a mapping, a ModelResponse or an exception, "
            f"not {type(turn).__name__}"
        )
    unknown = sorted(set(turn) - set(_TURN_KEYS))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a turn may have "
            f"{', '.join(_TURN_KEYS)}"
        )
    if "content" in turn and "output" in turn:
        raise ValueError(f"{where}: give 'content' (text) or 'output' (JSON), not both")
    content = turn.get("content")
    if "output" in turn:
        content = json.dumps(turn["output"], ensure_ascii=False)
    elif content is not None and not isinstance(content, str):
        raise ValueError(f"{where}: 'content' must be text; use 'output' for a JSON answer")
    raw_calls = turn.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise ValueError(f"{where}: 'tool_calls' must be a list")
    calls = tuple(_call(c, f"{where}, tool call {i + 1}") for i, c in enumerate(raw_calls))
    usage = turn.get("usage")
    if usage is not None:
        if not isinstance(usage, Mapping):
            raise ValueError(f"{where}: 'usage' must be a mapping of input_tokens, output_tokens")
        usage = Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))
    if content is None and not calls and "finish_reason" not in turn:
        raise ValueError(f"{where}: a turn needs content, output or tool_calls")
    return ScriptedTurn(content, calls, usage, turn.get("finish_reason"))


def _call(call: Any, where: str) -> ScriptedCall:
    if not isinstance(call, Mapping):
        raise ValueError(f"{where}: expected a mapping with 'name' and 'arguments'")
    unknown = sorted(set(call) - {"id", "name", "arguments"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: 'name' must be a non-empty string")
    arguments = call.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    call_id = call.get("id")
    return ScriptedCall(str(call_id) if call_id else None, name, arguments)


class _IdMaker:
    def __init__(self, name: str) -> None:
        self._prefix = "call_" + (re.sub(r"[^a-zA-Z0-9]+", "_", name).strip("_") or "model")
        self._count = 0

    def __call__(self) -> str:
        self._count += 1
        return f"{self._prefix}_{self._count}"


class ScriptedModel:
    """A model that answers with the given turns, in order, whatever it is asked.

    Tool calls without an ``id`` get ``call_<name>_<n>``. Every request is kept in
    :attr:`requests`. Asking for more turns than scripted raises :class:`ScriptExhaustedError`
    (a :class:`ModelError`, so it fails the agent step like a real provider error would).

    Args:
        turns: The turns, see the module docstring.
        name: The model's name, as a workflow refers to it (e.g. ``"scripted:triage"``).
    """

    def __init__(self, turns: Iterable[Turn], *, name: str = "scripted") -> None:
        self.name = name
        self._turns = [normalize_turn(t, f"{name}: turn {i + 1}") for i, t in enumerate(turns)]
        self._next = 0
        self._new_id = _IdMaker(name)
        self.requests: list[ModelRequest] = []

    @property
    def remaining(self) -> int:
        """How many turns are left."""
        return len(self._turns) - self._next

    async def respond(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        if self._next >= len(self._turns):
            raise ScriptExhaustedError(
                f"ScriptedModel {self.name!r} was asked for turn {len(self.requests)} but was "
                f"given {len(self._turns)}. Add a turn to its script (the last message it got "
                f"was from {_last_role(request)!r})."
            )
        turn = self._turns[self._next]
        self._next += 1
        return turn.to_response(self._new_id, self.name)

    def __repr__(self) -> str:
        return f"ScriptedModel({self.name!r}, remaining={self.remaining})"


TurnFunction: TypeAlias = Callable[[ModelRequest], "Turn | Awaitable[Turn]"]


class FunctionModel:
    """A model whose turns come from ``fn(request)``, sync or async.

    ``fn`` returns a turn in any of the shapes of the module docstring. A sync ``fn`` runs in a
    worker thread, like dwf's services. Every request is kept in :attr:`requests`.
    """

    def __init__(self, fn: TurnFunction, *, name: str = "function") -> None:
        self.name = name
        self._fn = fn
        self._new_id = _IdMaker(name)
        self.requests: list[ModelRequest] = []

    async def respond(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        where = f"{self.name}: the turn returned for request {len(self.requests)}"
        if inspect.iscoroutinefunction(self._fn):
            turn = await self._fn(request)
        else:
            turn = await asyncio.to_thread(self._fn, request)
            if inspect.isawaitable(turn):
                turn = await turn
        return normalize_turn(turn, where).to_response(self._new_id, self.name)

    def __repr__(self) -> str:
        return f"FunctionModel({self.name!r})"


ModerationTurn: TypeAlias = bool | Iterable[str] | ModerationResult | BaseException


class ScriptedModerator:
    """A moderator that answers with the given results in order: ``True``/``False`` (flagged or
    not), a list of flagged category names, a :class:`ModerationResult`, or an exception to
    raise. The texts it was asked about are kept in :attr:`texts`."""

    def __init__(self, results: Iterable[ModerationTurn]) -> None:
        self._results = [moderation_result(r) for r in results]
        self._next = 0
        self.texts: list[str] = []

    async def moderate(self, text: str) -> ModerationResult:
        self.texts.append(text)
        if self._next >= len(self._results):
            raise ScriptExhaustedError(
                f"ScriptedModerator was asked for result {len(self.texts)} but was given "
                f"{len(self._results)}."
            )
        result = self._results[self._next]
        self._next += 1
        if isinstance(result, BaseException):
            raise result
        return result


def moderation_result(value: ModerationTurn) -> ModerationResult | BaseException:
    """A scripted moderation answer in one shape."""
    if isinstance(value, ModerationResult | BaseException):
        return value
    if isinstance(value, bool):
        return ModerationResult(flagged=value)
    if isinstance(value, str):
        raise ValueError("a moderation result is a bool or a list of category names, not a str")
    categories = tuple(value)
    return ModerationResult(flagged=bool(categories), categories=categories)


def _last_role(request: ModelRequest) -> str | None:
    return request.messages[-1].get("role") if request.messages else None
