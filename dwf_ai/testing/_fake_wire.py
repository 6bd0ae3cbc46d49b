"""The wire formats the FakeProvider speaks: OpenAI Chat Completions, Anthropic Messages and
OpenAI moderation bodies, their streaming events, and their error bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from dwf_ai.models.base import ModerationResult
from dwf_ai.testing.models import ScriptedCall, ScriptedTurn

_CREATED = 1_700_000_000
_MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_OPENAI_FINISH = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "length": "length",
    "content_filter": "content_filter",
    "refusal": "stop",
}
_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
    "refusal": "refusal",
}
# status -> (OpenAI type, OpenAI code, Anthropic type, message)
_ERRORS: dict[int, tuple[str, str | None, str, str]] = {
    400: ("invalid_request_error", None, "invalid_request_error", "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "authentication_error",
        "Incorrect API key provided.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "not_found_error",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    413: ("invalid_request_error", None, "request_too_large", "Request exceeds the maximum size."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "rate_limit_error",
        "Rate limit reached for {model}. Please try again later.",
    ),
    500: ("server_error", None, "api_error", "The server had an error processing your request."),
    503: ("server_error", None, "api_error", "The service is temporarily unavailable."),
    529: ("server_error", None, "overloaded_error", "Overloaded"),
}
_CONTEXT_MESSAGES = {
    "openai": "This model's maximum context length is 128000 tokens. However, your messages "
    "resulted in 130000 tokens. Please reduce the length of the messages.",
    "anthropic": "prompt is too long: 210000 tokens > 200000 maximum",
}


def openai_completion(n: int, turn: ScriptedTurn, body: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` answering ``body`` with ``turn``."""
    model = str(body.get("model", ""))
    calls = _openai_calls(n, turn)
    message: dict[str, Any] = {"role": "assistant", "content": turn.content, "refusal": None}
    if turn.finish_reason == "refusal":
        message["content"], message["refusal"] = None, turn.content
    if calls:
        message["tool_calls"] = [_openai_call(cid, c) for cid, c in calls]
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "usage": _openai_usage(turn, body),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _openai_finish(turn),
                "logprobs": None,
            }
        ],
    }


def openai_stream(n: int, turn: ScriptedTurn, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` events of the same answer, streamed."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    usage = _openai_usage(turn, body) if include_usage else None
    return _openai_chunks(
        n, str(body.get("model", "")), turn, _openai_calls(n, turn), _openai_finish(turn), usage
    )


def anthropic_message(n: int, turn: ScriptedTurn, body: dict[str, Any]) -> dict[str, Any]:
    """A ``message`` answering ``body`` with ``turn``. Tool blocks keep their raw arguments
    under ``_raw`` for streaming; :func:`strip_raw` removes them."""
    blocks = _anthropic_blocks(n, turn, body)
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else None
    stop = stop or _ANTHROPIC_STOP.get(_finish(turn), _finish(turn))
    usage_in, usage_out = _usage(turn, body)
    return {
        "id": f"msg_fake_{n}",
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model", "")),
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
    }


def anthropic_stream(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The Messages streaming events of ``message``."""
    return _anthropic_events(message)


def error_body(
    flavour: str, status: int, message: str | None, code: str | None, model: str, request_id: str
) -> dict[str, Any]:
    """An error body as ``flavour`` (``"openai"`` or ``"anthropic"``) writes it."""
    kind, default_code, anthropic_kind, default = _ERRORS.get(
        status, ("api_error", None, "api_error", f"HTTP {status}")
    )
    if code == "context_length_exceeded":
        default = _CONTEXT_MESSAGES[flavour]
    text = message or default.format(model=model)
    if flavour == "openai":
        return {
            "error": {"message": text, "type": kind, "param": None, "code": code or default_code}
        }
    return {
        "type": "error",
        "error": {"type": anthropic_kind, "message": text},
        "request_id": request_id,
    }


def moderation_response(n: int, result: ModerationResult, body: dict[str, Any]) -> dict[str, Any]:
    """A moderation answer: ``result`` for every input."""
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    return {
        "id": f"modr-fake-{n}",
        "model": str(body.get("model") or "omni-moderation-latest"),
        "results": [_moderation_body(result) for _ in range(count)],
    }


def _openai_calls(n: int, turn: ScriptedTurn) -> list[tuple[str, ScriptedCall]]:
    return [(c.id or f"call_fake_{n}_{i}", c) for i, c in enumerate(turn.tool_calls, 1)]


def _openai_finish(turn: ScriptedTurn) -> str:
    return _OPENAI_FINISH.get(_finish(turn), _finish(turn))


def _openai_usage(turn: ScriptedTurn, body: dict[str, Any]) -> dict[str, int]:
    usage_in, usage_out = _usage(turn, body)
    return {
        "prompt_tokens": usage_in,
        "completion_tokens": usage_out,
        "total_tokens": usage_in + usage_out,
    }


def credential(headers: Mapping[str, str]) -> str | None:
    if "x-api-key" in headers:
        return headers["x-api-key"]
    auth = headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else (auth or None)


def masked(headers: Mapping[str, str]) -> dict[str, str]:
    secret = {"authorization", "x-api-key", "api-key", "proxy-authorization"}
    return {k: "***" if k.lower() in secret else v for k, v in headers.items()}


def _finish(turn: ScriptedTurn) -> str:
    return turn.finish_reason or ("tool_calls" if turn.tool_calls else "stop")


def _usage(turn: ScriptedTurn, body: dict[str, Any]) -> tuple[int, int]:
    if turn.usage is not None:
        return turn.usage.input_tokens, turn.usage.output_tokens
    prompt = json.dumps([body.get("system"), body.get("messages")], ensure_ascii=False)
    answer = (turn.content or "") + "".join(c.name + c.arguments for c in turn.tool_calls)
    return max(1, len(prompt) // 4), max(1, len(answer) // 4)


def _pieces(text: str, size: int = 6) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _openai_call(call_id: str, call: ScriptedCall) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _openai_chunks(
    n: int,
    model: str,
    turn: ScriptedTurn,
    calls: list[tuple[str, ScriptedCall]],
    finish: str,
    usage: dict[str, int] | None,
) -> Iterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "usage": None,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }

    yield chunk({"role": "assistant", "content": ""})
    field_name = "refusal" if turn.finish_reason == "refusal" else "content"
    if turn.content:
        for piece in _pieces(turn.content):
            yield chunk({field_name: piece})
    for index, (call_id, call) in enumerate(calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        for piece in _pieces(call.arguments):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, finish)
    if usage is not None:
        yield {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "choices": [],
            "usage": usage,
        }


def _forced_tool(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice") or {}
    tools = body.get("tools") or []
    if choice.get("type") == "tool":
        return str(choice.get("name"))
    if choice.get("type") == "any" and tools:
        return str(tools[-1].get("name"))
    return None


def _anthropic_blocks(n: int, turn: ScriptedTurn, body: dict[str, Any]) -> list[dict[str, Any]]:
    calls = list(turn.tool_calls)
    content = turn.content
    forced = _forced_tool(body)
    if forced and content and not calls:
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            calls, content = [ScriptedCall(None, forced, content)], None
    blocks: list[dict[str, Any]] = []
    if content:
        blocks.append({"type": "text", "text": content})
    for i, call in enumerate(calls, 1):
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id or f"toolu_fake_{n}_{i}",
                "name": call.name,
                "input": arguments if isinstance(arguments, dict) else {},
                "_raw": call.arguments,
            }
        )
    return blocks


def _anthropic_events(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1},
    }
    yield {"type": "message_start", "message": start}
    yield {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            for piece in _pieces(block["text"]):
                yield {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
        else:
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": {},
                },
            }
            for piece in _pieces(block["_raw"]):
                yield {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
        yield {"type": "content_block_stop", "index": index}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": message["usage"]["output_tokens"]},
    }
    yield {"type": "message_stop"}


async def sse_body(events: Iterable[dict[str, Any]], *, named: bool) -> AsyncIterator[bytes]:
    """Server-sent events: ``event:`` lines for Anthropic (``named``), ``[DONE]`` for OpenAI."""
    for event in events:
        prefix = f"event: {event['type']}\n" if named else ""
        yield f"{prefix}data: {json.dumps(strip_raw(event))}\n\n".encode()
    if not named:
        yield b"data: [DONE]\n\n"


def strip_raw(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_raw(v) for k, v in value.items() if k != "_raw"}
    if isinstance(value, list):
        return [strip_raw(v) for v in value]
    return value


def _moderation_body(result: ModerationResult) -> dict[str, Any]:
    names = list(dict.fromkeys([*_MODERATION_CATEGORIES, *result.categories, *result.scores]))
    flagged = set(result.categories)
    scores = {name: result.scores.get(name, 0.91 if name in flagged else 0.0001) for name in names}
    return {
        "flagged": result.flagged,
        "categories": {name: name in flagged for name in names},
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in names},
    }
