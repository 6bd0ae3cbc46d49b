"""OpenAI, and every OpenAI-compatible server, through the Chat Completions API of the ``openai``
SDK (3.x, on ``httpx2``).

A compatible server is just a base URL::

    # Ollama (no key needed)
    OpenAIModel("llama3.1", ProviderSettings(base_url="http://localhost:11434/v1"))
    # vLLM started with --api-key
    OpenAIModel("Qwen/Qwen2.5-7B-Instruct",
                ProviderSettings(base_url="http://localhost:8000/v1", api_key_env="VLLM_API_KEY"))
    # a LiteLLM proxy, which may route to any provider
    OpenAIModel("claude-sonnet", ProviderSettings(base_url="http://localhost:4000",
                                                  api_key_env="LITELLM_MASTER_KEY"))

or, from a workflow, ``model: "openai:llama3.1"`` with the ``openai`` provider's ``base_url`` set
(or ``OPENAI_BASE_URL``).

Mapping decisions:

* ``max_tokens`` is sent as ``max_completion_tokens`` to OpenAI itself (the o-series and newer
  models reject ``max_tokens``) and as ``max_tokens`` to other servers, which widely support only
  that one.
* Structured output uses ``response_format={"type": "json_schema", ...}``, with ``strict: true``
  when the schema meets strict mode's rules and ``strict: false`` otherwise (still a schema, not
  ``json_object``, which would need the word "JSON" in the prompt and drops the schema).
* A tool result with ``is_error`` is sent as ``"Error: <content>"``; Chat Completions has no
  error flag.
* Retries are the SDK's own (429, 408, 409, 5xx, dropped connections, with ``Retry-After``
  honoured up to 120 s); failures become :class:`~dwf_ai.models.base.ModelError`.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from dwf_ai.models import _errors, _schema
from dwf_ai.models._clients import SDKModel
from dwf_ai.models.base import (
    Message,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModerationResult,
    ToolCall,
    Usage,
)
from dwf_ai.models.config import (
    ProviderConfig,
    ProviderSettings,
    display_url,
)

if TYPE_CHECKING:
    import httpx2
    from openai import AsyncOpenAI, OpenAIError
    from openai.types.chat import ChatCompletion

__all__ = ["OpenAIModel"]

log = logging.getLogger("dwf.ai")

_LABEL = "OpenAI"
_OFFICIAL_HOST = "api.openai.com"
# Sent as the key to a compatible server when none is configured (Ollama, vLLM without
# --api-key need none, but the SDK insists on one).
_NO_KEY = "dwf-no-key"
_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


class OpenAIModel(SDKModel["AsyncOpenAI"]):
    """A chat model served over the OpenAI Chat Completions API.

    Args:
        model_name: The provider's model name, e.g. ``"gpt-4o-mini"`` or ``"llama3.1"``.
        config: A :class:`ProviderConfig` (its ``openai`` settings are used) or the
            :class:`ProviderSettings` themselves; ``None`` reads the environment.
        http_client: An ``httpx2.AsyncClient`` for the SDK to use (proxies, tests); it then
            belongs to the caller.
        stream: Consume answers as a stream of chunks instead of one response.
        moderation_model: The model :meth:`moderate` uses.
    """

    provider = "openai"

    def __init__(
        self,
        model_name: str,
        config: ProviderConfig | ProviderSettings | None = None,
        *,
        http_client: httpx2.AsyncClient | None = None,
        stream: bool = False,
        moderation_model: str = "omni-moderation-latest",
    ) -> None:
        if not model_name:
            raise ValueError("OpenAIModel needs a model name, e.g. 'gpt-4o-mini'")
        super().__init__(model_name, config, http_client)
        self.stream = stream
        self.moderation_model = moderation_model

    async def respond(self, request: ModelRequest) -> ModelResponse:
        """Send the conversation to the model and return its turn. The model's own ``name``
        is sent; ``request.model`` is informational."""
        client = await self._clients.get()
        params, wrapped = self._params(request)
        log.debug(
            "openai request: model=%s messages=%d tools=%d structured=%s stream=%s",
            self.name,
            len(request.messages),
            len(request.tools),
            request.output_schema is not None,
            self.stream,
        )
        import openai

        try:
            if self.stream:
                response = await self._respond_streaming(client, params)
            else:
                completion = await client.chat.completions.create(**params)
                response = _from_completion(completion)
        except openai.OpenAIError as exc:
            raise self._error(exc, self.name) from None
        response.content = _schema.unwrap(response.content, wrapped)
        log.debug(
            "openai response: model=%s finish=%s tool_calls=%d input_tokens=%d output_tokens=%d",
            self.name,
            response.finish_reason,
            len(response.tool_calls),
            response.usage.input_tokens,
            response.usage.output_tokens,
        )
        return response

    async def moderate(self, text: str) -> ModerationResult:
        """Classify ``text`` with the moderation endpoint (``moderation_model``)."""
        client = await self._clients.get()
        import openai

        log.debug("openai moderation: model=%s", self.moderation_model)
        try:
            answer = await client.moderations.create(input=text, model=self.moderation_model)
        except openai.OpenAIError as exc:
            raise self._error(exc, self.moderation_model) from None
        if not answer.results:
            raise ModelError(f"{_LABEL} returned no moderation result", code="bad_response")
        result = answer.results[0]
        categories = result.categories.to_dict()
        scores = result.category_scores.to_dict()
        return ModerationResult(
            flagged=bool(result.flagged),
            categories=tuple(name for name, value in categories.items() if value is True),
            scores={k: float(v) for k, v in scores.items() if isinstance(v, int | float)},
        )

    # -- client ---------------------------------------------------------------------------

    def _make_client(self) -> AsyncOpenAI:
        try:
            import openai
        except ImportError:
            raise _errors.missing_sdk("openai") from None
        settings = self._settings_now()
        api_key = settings.api_key
        if api_key is None:
            if settings.base_url is None or _is_official(settings.base_url):
                raise _errors.missing_key(_LABEL, "openai", settings.api_key_env, self.name)
            api_key = _NO_KEY
        return openai.AsyncOpenAI(**self._client_kwargs(settings, api_key))

    # -- request --------------------------------------------------------------------------

    def _params(self, request: ModelRequest) -> tuple[dict[str, Any], bool]:
        params: dict[str, Any] = {"model": self.name, "messages": to_openai_messages(request)}
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": _schema.object_or_empty(tool.parameters),
                    },
                }
                for tool in request.tools
            ]
        wrapped = False
        if request.output_schema is not None:
            schema, wrapped = _schema.prepare(request.output_schema)
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _schema.schema_name(request.output_schema),
                    "schema": schema,
                    "strict": _schema.is_strict_compatible(schema),
                },
            }
        settings = request.settings
        if settings.temperature is not None:
            params["temperature"] = settings.temperature
        if settings.top_p is not None:
            params["top_p"] = settings.top_p
        if settings.max_tokens is not None:
            base_url = self._settings_now().base_url
            official = base_url is None or _is_official(base_url)
            params["max_completion_tokens" if official else "max_tokens"] = settings.max_tokens
        if settings.stop:
            params["stop"] = list(settings.stop)
        if settings.extra:
            params["extra_body"] = dict(settings.extra)
        return params, wrapped

    async def _respond_streaming(
        self, client: AsyncOpenAI, params: dict[str, Any]
    ) -> ModelResponse:
        content: list[str] = []
        refusal: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        usage = Usage()
        model: str | None = None
        stream = await client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    delta = choice.delta
                    if delta.content:
                        content.append(delta.content)
                    if delta.refusal:
                        refusal.append(delta.refusal)
                    for part in delta.tool_calls or []:
                        call = calls.setdefault(part.index, {"id": "", "name": "", "args": []})
                        call["id"] = part.id or call["id"]
                        if part.function is not None:
                            call["name"] += part.function.name or ""
                            call["args"].append(part.function.arguments or "")
                    if choice.finish_reason:
                        finish = choice.finish_reason
        tool_calls = [
            ToolCall(c["id"] or _new_call_id(), c["name"], "".join(c["args"]))
            for _, c in sorted(calls.items())
        ]
        text = "".join(content) or None
        finish_reason = _FINISH.get(finish or "", finish)
        if refusal and not text:
            text, finish_reason = "".join(refusal), "refusal"
        return ModelResponse(text, tool_calls, usage, finish_reason, model)

    def _error(self, exc: OpenAIError, model: str) -> ModelError:
        import openai

        settings = self._settings_now()
        secrets = (settings.api_key,)
        if isinstance(exc, openai.APIStatusError):
            body = exc.body if isinstance(exc.body, dict) else {}
            message = body.get("message") if isinstance(body.get("message"), str) else None
            headers = exc.response.headers
            return _errors.status_error(
                label=_LABEL,
                provider="openai",
                model=model,
                status=exc.status_code,
                message=message or exc.message,
                provider_code=exc.code,
                env_var=settings.api_key_env,
                base_url_env=settings.base_url_env,
                request_id=exc.request_id,
                retry_after=_errors.retry_after_seconds(headers),
                max_retries=settings.max_retries,
                secrets=secrets,
            )
        if isinstance(exc, openai.APIConnectionError):
            return _errors.connection_error(
                label=_LABEL,
                model=model,
                base_url=display_url(settings.base_url),
                base_url_env=settings.base_url_env,
                timed_out=isinstance(exc, openai.APITimeoutError),
            )
        return ModelError(
            f"{_LABEL} (model {model!r}) failed: {_errors.redact(str(exc), secrets)}",
            code="provider_error",
        )


def to_openai_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """The conversation in Chat Completions form."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        role = message.get("role")
        if role in ("system", "user"):
            out.append({"role": role, "content": message.get("content") or ""})
        elif role == "assistant":
            out.append(_assistant(message))
        elif role == "tool":
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            if message.get("is_error") and not text.lower().startswith("error"):
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": message["tool_call_id"], "content": text})
        else:
            raise ModelError(
                f"message {index} has role {role!r}; expected system, user, assistant or tool",
                code="invalid_request",
            )
    return out


def _assistant(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    calls = message.get("tool_calls") or []
    if calls:
        out["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call.get("arguments") or "{}"},
            }
            for call in calls
        ]
    elif out["content"] is None:
        out["content"] = ""
    return out


def _from_completion(completion: ChatCompletion) -> ModelResponse:
    if not completion.choices:
        raise ModelError(f"{_LABEL} returned no choices", code="bad_response")
    choice = completion.choices[0]
    message = choice.message
    tool_calls = [
        ToolCall(call.id or _new_call_id(), call.function.name, call.function.arguments or "")
        for call in message.tool_calls or []
        if call.type == "function"
    ]
    usage = Usage()
    if completion.usage is not None:
        usage = Usage(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    content = message.content
    finish = _FINISH.get(choice.finish_reason, choice.finish_reason)
    if message.refusal and not content:
        content, finish = message.refusal, "refusal"
    return ModelResponse(content, tool_calls, usage, finish, completion.model)


def _is_official(base_url: str) -> bool:
    return _OFFICIAL_HOST in base_url


def _new_call_id() -> str:
    # Some compatible servers leave ids out; the conversation needs them to pair results.
    return f"call_{uuid.uuid4().hex[:24]}"
