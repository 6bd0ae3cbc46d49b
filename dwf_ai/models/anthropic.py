"""Anthropic through the Messages API of the ``anthropic`` SDK (2.x, on ``httpx2``).

Mapping decisions:

* System messages become ``system=`` (joined by blank lines, wherever they stood).
* Consecutive tool results become one user message of ``tool_result`` blocks (``is_error`` kept),
  placed before any user text that follows, as the API requires; consecutive messages of one
  role are merged.
* An assistant tool call whose ``arguments`` are not a JSON object (a model can produce broken
  JSON) is replayed with ``input: {}``; the raw text stays in the journal and the tool result that
  reported the problem follows it, so the model sees its call failed and why.
* Structured output is a forced tool call: a tool named ``final_answer`` whose input schema is the
  output schema. Alone it is forced by name; beside other tools ``tool_choice`` is ``any`` so the
  model may still call them first. Its input, as JSON text, becomes the answer. Pass
  ``structured_output="native"`` to use the API's ``output_config.format`` instead (newer models).
* ``max_tokens`` is required by the API; the default is 4096. Above what the SDK allows without
  streaming (about 21k tokens) the answer is streamed.
* The 2.x SDK has no ``temperature`` / ``top_p`` arguments any more; when set they are sent in
  the request body and the API decides.
* Retries are the SDK's own (429, 408, 409, 5xx and 529 overloaded, dropped connections, with
  ``Retry-After`` honoured). The SDK has no upper bound on ``Retry-After``; a middleware stops at
  120 s, like the openai SDK, and the error says to retry the step later.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Literal

from dwf_ai.models import _errors, _schema
from dwf_ai.models._clients import SDKModel
from dwf_ai.models.base import Message, ModelError, ModelRequest, ModelResponse, ToolCall, Usage
from dwf_ai.models.config import (
    ProviderConfig,
    ProviderSettings,
    display_url,
)

if TYPE_CHECKING:
    import httpx2
    from anthropic import AnthropicError, AsyncAnthropic
    from anthropic.types import Message as AnthropicMessage

__all__ = ["AnthropicModel"]

log = logging.getLogger("dwf.ai")

_LABEL = "Anthropic"
DEFAULT_MAX_TOKENS = 4096
FINAL_ANSWER_TOOL = "final_answer"
# The SDK refuses a non-streaming request it expects to take over 10 minutes, estimated as
# one hour per 128k output tokens.
_NON_STREAMING_MAX_TOKENS = 128_000 * 600 // 3600
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
}

# One piece of an answer: ("text", text) or ("tool", id, name, arguments as JSON text).
_Part = tuple[str, ...]


class AnthropicModel(SDKModel["AsyncAnthropic"]):
    """A Claude model served over the Anthropic Messages API.

    Args:
        model_name: e.g. ``"claude-sonnet-5"``.
        config: A :class:`ProviderConfig` (its ``anthropic`` settings are used) or the
            :class:`ProviderSettings` themselves; ``None`` reads the environment.
        http_client: An ``httpx2.AsyncClient`` for the SDK to use; it then belongs to the caller.
        stream: Consume answers as a stream of events instead of one response.
        default_max_tokens: ``max_tokens`` when the request's settings leave it unset.
        structured_output: ``"tool"`` (a forced ``final_answer`` tool; every model) or
            ``"native"`` (``output_config.format``; models that support structured outputs).
    """

    provider = "anthropic"

    def __init__(
        self,
        model_name: str,
        config: ProviderConfig | ProviderSettings | None = None,
        *,
        http_client: httpx2.AsyncClient | None = None,
        stream: bool = False,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        structured_output: Literal["tool", "native"] = "tool",
    ) -> None:
        if not model_name:
            raise ValueError("AnthropicModel needs a model name, e.g. 'claude-sonnet-5'")
        if structured_output not in ("tool", "native"):
            raise ValueError(
                f"structured_output must be 'tool' or 'native', not {structured_output!r}"
            )
        super().__init__(model_name, config, http_client)
        self.stream = stream
        self.default_max_tokens = default_max_tokens
        self.structured_output = structured_output

    async def respond(self, request: ModelRequest) -> ModelResponse:
        """Send the conversation to the model and return its turn. The model's own ``name``
        is sent; ``request.model`` is informational."""
        client = await self._clients.get()
        params, final_tool, wrapped = self._params(request)
        streaming = self.stream or params["max_tokens"] > _NON_STREAMING_MAX_TOKENS
        log.debug(
            "anthropic request: model=%s messages=%d tools=%d structured=%s stream=%s",
            self.name,
            len(request.messages),
            len(request.tools),
            request.output_schema is not None,
            streaming,
        )
        import anthropic

        try:
            if streaming:
                parts, stop, usage, model = await _stream(client, params)
            else:
                parts, stop, usage, model = _from_message(await client.messages.create(**params))
        except anthropic.AnthropicError as exc:
            raise self._error(exc) from None
        except _RetryAfterTooLong as exc:
            raise self._too_long_error(exc) from None
        response = _response(parts, stop, usage, model, final_tool)
        response.content = _schema.unwrap(response.content, wrapped)
        log.debug(
            "anthropic response: model=%s finish=%s tool_calls=%d input_tokens=%d output_tokens=%d",
            self.name,
            response.finish_reason,
            len(response.tool_calls),
            response.usage.input_tokens,
            response.usage.output_tokens,
        )
        return response

    # -- client ---------------------------------------------------------------------------

    def _make_client(self) -> AsyncAnthropic:
        try:
            import anthropic
        except ImportError:
            raise _errors.missing_sdk("anthropic") from None
        settings = self._settings_now()
        if settings.api_key is None:
            raise _errors.missing_key(_LABEL, "anthropic", settings.api_key_env, self.name)
        kwargs = self._client_kwargs(settings, settings.api_key)
        return anthropic.AsyncAnthropic(**kwargs, middleware=[_cap_retry_after])

    # -- request --------------------------------------------------------------------------

    def _params(self, request: ModelRequest) -> tuple[dict[str, Any], str | None, bool]:
        system, messages = to_anthropic_messages(request)
        settings = request.settings
        params: dict[str, Any] = {
            "model": self.name,
            "max_tokens": settings.max_tokens or self.default_max_tokens,
            "messages": messages,
        }
        if system:
            params["system"] = system
        tools = [
            {
                "name": tool.name,
                "description": tool.description,
                "input_schema": _schema.object_or_empty(tool.parameters),
            }
            for tool in request.tools
        ]
        final_tool: str | None = None
        wrapped = False
        if request.output_schema is not None:
            schema, wrapped = _schema.prepare(request.output_schema)
            if self.structured_output == "native":
                params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
            else:
                final_tool = _unused_name(FINAL_ANSWER_TOOL, {t.name for t in request.tools})
                tools.append(
                    {
                        "name": final_tool,
                        "description": (
                            "Give your final answer by calling this tool exactly once, when "
                            "you are done, with the answer as its input."
                        ),
                        "input_schema": schema,
                    }
                )
                params["tool_choice"] = (
                    {"type": "any"} if request.tools else {"type": "tool", "name": final_tool}
                )
        if tools:
            params["tools"] = tools
        if settings.stop:
            params["stop_sequences"] = list(settings.stop)
        extra: dict[str, Any] = {}
        if settings.temperature is not None:
            extra["temperature"] = settings.temperature
        if settings.top_p is not None:
            extra["top_p"] = settings.top_p
        extra.update(settings.extra)
        if extra:
            params["extra_body"] = extra
        return params, final_tool, wrapped

    def _error(self, exc: AnthropicError) -> ModelError:
        import anthropic

        settings = self._settings_now()
        secrets = (settings.api_key,)
        if isinstance(exc, anthropic.APIStatusError):
            return _errors.status_error(
                label=_LABEL,
                provider="anthropic",
                model=self.name,
                status=exc.status_code,
                message=exc.api_message or _body_message(exc.body) or exc.message,
                provider_code=exc.type,
                env_var=settings.api_key_env,
                base_url_env=settings.base_url_env,
                request_id=exc.request_id,
                retry_after=_errors.retry_after_seconds(exc.response.headers),
                max_retries=settings.max_retries,
                secrets=secrets,
            )
        if isinstance(exc, anthropic.APIConnectionError):
            return _errors.connection_error(
                label=_LABEL,
                model=self.name,
                base_url=display_url(settings.base_url),
                base_url_env=settings.base_url_env,
                timed_out=isinstance(exc, anthropic.APITimeoutError),
            )
        return ModelError(
            f"{_LABEL} (model {self.name!r}) failed: {_errors.redact(str(exc), secrets)}",
            code="provider_error",
        )

    def _too_long_error(self, exc: _RetryAfterTooLong) -> ModelError:
        settings = self._settings_now()
        return _errors.status_error(
            label=_LABEL,
            provider="anthropic",
            model=self.name,
            status=exc.status,
            message=exc.message,
            provider_code=None,
            env_var=settings.api_key_env,
            base_url_env=settings.base_url_env,
            request_id=exc.request_id,
            retry_after=exc.retry_after,
            max_retries=settings.max_retries,
            secrets=(settings.api_key,),
        )


def to_anthropic_messages(request: ModelRequest) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt and the conversation in Messages API form."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        role = message.get("role")
        if role == "system":
            system.append(_text(message.get("content")))
            continue
        if role == "user":
            blocks, target = _text_blocks(message.get("content")), "user"
        elif role == "tool":
            blocks, target = [_tool_result(message)], "user"
        elif role == "assistant":
            blocks, target = _assistant_blocks(message), "assistant"
        else:
            raise ModelError(
                f"message {index} has role {role!r}; expected system, user, assistant or tool",
                code="invalid_request",
            )
        if not blocks:
            continue
        if out and out[-1]["role"] == target:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": target, "content": blocks})
    for message in out:
        if message["role"] == "user":
            # tool_result blocks must open the user turn that answers the tool calls
            message["content"].sort(key=lambda block: block.get("type") != "tool_result")
    return "\n\n".join(s for s in system if s), out


def _text(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [b if isinstance(b, dict) else {"type": "text", "text": _text(b)} for b in content]
    text = _text(content)
    return [{"type": "text", "text": text}] if text else []


def _tool_result(message: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message["tool_call_id"]}
    text = _text(message.get("content"))
    if text:
        block["content"] = text
    if message.get("is_error"):
        block["is_error"] = True
    return block


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    blocks = _text_blocks(message.get("content"))
    for call in message.get("tool_calls") or []:
        try:
            arguments = json.loads(call.get("arguments") or "{}")
        except json.JSONDecodeError:
            arguments = {}
        if not isinstance(arguments, dict):
            arguments = {}
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": call["name"], "input": arguments}
        )
    return blocks


def _unused_name(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _from_message(message: AnthropicMessage) -> tuple[list[_Part], str | None, Usage, str]:
    parts: list[_Part] = []
    for block in message.content:
        if block.type == "text":
            parts.append(("text", block.text))
        elif block.type == "tool_use":
            parts.append(
                ("tool", block.id, block.name, json.dumps(block.input, ensure_ascii=False))
            )
    return parts, message.stop_reason, _usage(message.usage), message.model


async def _stream(
    client: AsyncAnthropic, params: dict[str, Any]
) -> tuple[list[_Part], str | None, Usage, str | None]:
    blocks: dict[int, dict[str, Any]] = {}
    stop: str | None = None
    usage = Usage()
    model: str | None = None
    stream = await client.messages.create(**params, stream=True)
    async with stream:
        async for event in stream:
            if event.type == "message_start":
                model = event.message.model
                usage = _usage(event.message.usage)
            elif event.type == "content_block_start":
                block = event.content_block
                if block.type == "text":
                    blocks[event.index] = {"type": "text", "text": [block.text]}
                elif block.type == "tool_use":
                    start = json.dumps(block.input) if block.input else ""
                    blocks[event.index] = {
                        "type": "tool",
                        "id": block.id,
                        "name": block.name,
                        "json": [start],
                    }
            elif event.type == "content_block_delta":
                entry = blocks.get(event.index)
                if entry is None:
                    continue
                if event.delta.type == "text_delta":
                    entry["text"].append(event.delta.text)
                elif event.delta.type == "input_json_delta":
                    entry["json"].append(event.delta.partial_json)
            elif event.type == "message_delta":
                stop = event.delta.stop_reason or stop
                usage = Usage(
                    event.usage.input_tokens
                    if event.usage.input_tokens is not None
                    else usage.input_tokens,
                    event.usage.output_tokens,
                )
    parts: list[_Part] = []
    for _, entry in sorted(blocks.items()):
        if entry["type"] == "text":
            parts.append(("text", "".join(entry["text"])))
        else:
            parts.append(("tool", entry["id"], entry["name"], "".join(entry["json"]) or "{}"))
    return parts, stop, usage, model


def _usage(usage: Any) -> Usage:
    # Input tokens are split three ways when prompt caching is on; they all count.
    total_input = (
        (usage.input_tokens or 0)
        + (getattr(usage, "cache_creation_input_tokens", None) or 0)
        + (getattr(usage, "cache_read_input_tokens", None) or 0)
    )
    return Usage(total_input, usage.output_tokens or 0)


def _response(
    parts: list[_Part], stop: str | None, usage: Usage, model: str | None, final_tool: str | None
) -> ModelResponse:
    text = "".join(p[1] for p in parts if p[0] == "text") or None
    calls = [ToolCall(p[1], p[2], p[3]) for p in parts if p[0] == "tool"]
    finish = _FINISH.get(stop or "", stop)
    if final_tool is not None:
        answers = [c for c in calls if c.name == final_tool]
        others = [c for c in calls if c.name != final_tool]
        if answers and not others:
            return ModelResponse(answers[0].arguments, [], usage, "stop", model)
        calls = others  # tools first; the model answers again after their results
    return ModelResponse(text, calls, usage, finish, model)


def _body_message(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return None


class _RetryAfterTooLong(Exception):
    def __init__(self, status: int, retry_after: float, message: str, request_id: str | None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.message = message
        self.request_id = request_id


async def _cap_retry_after(request: Any, call_next: Any) -> Any:
    """anthropic middleware (it runs once per attempt, inside the SDK's retry loop): a retryable
    error that asks for more than 120 s is raised at once instead of slept on."""
    response = await call_next(request)
    raw = response.http_response
    status = raw.status_code
    retryable = status in (408, 409, 429) or status >= 500
    if retryable and raw.headers.get("x-should-retry") != "false":
        delay = _errors.retry_after_seconds(raw.headers)
        if delay is not None and delay > _errors.MAX_RETRY_AFTER:
            await raw.aread()
            try:
                message = _body_message(json.loads(raw.text)) or raw.text
            except ValueError:
                message = raw.text
            await raw.aclose()
            raise _RetryAfterTooLong(status, delay, message, raw.headers.get("request-id"))
    return response
