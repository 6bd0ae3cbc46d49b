"""OpenAIModel runs the real openai SDK against the FakeProvider, in-process."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from dwf_ai.models import (
    ModelError,
    ModelRequest,
    ModelSettings,
    OpenAIModel,
    ProviderSettings,
    ToolSpec,
)
from dwf_ai.testing import FakeError, FakeProvider

LOOKUP = ToolSpec(
    "lookup_order",
    "Find an order by id.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
WEATHER = ToolSpec("weather", "The weather in a city.", {})
KEY = "sk-fake-openai-key"


def _ask(*messages: dict[str, object], **kwargs: object) -> ModelRequest:
    conversation = list(messages) or [{"role": "user", "content": "Where is my order A-1?"}]
    return ModelRequest("gpt-4o-mini", conversation, **kwargs)  # type: ignore[arg-type]


async def test_a_text_answer_comes_back_with_usage_and_the_key_was_sent() -> None:
    fake = FakeProvider(["It ships tomorrow."], api_key=KEY)
    model = fake.openai_model()

    response = await model.respond(
        _ask(
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "When does it ship?"},
        )
    )

    assert response.content == "It ships tomorrow."
    assert response.finish_reason == "stop" and response.model == "gpt-4o-mini"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    sent = fake.requests[0]
    assert sent.path == "/v1/chat/completions" and sent.api_key == KEY
    assert sent.headers["authorization"] == "***" and KEY not in repr(sent)
    assert sent.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "When does it ship?"},
    ]


async def test_tool_calls_round_trip_with_their_ids_until_the_final_answer() -> None:
    fake = FakeProvider(
        [
            {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}}]},
            "Order A-1 ships tomorrow.",
        ]
    )
    model = fake.openai_model()
    conversation: list[dict[str, object]] = [{"role": "user", "content": "Where is A-1?"}]

    first = await model.respond(_ask(*conversation, tools=[LOOKUP]))
    call = first.tool_calls[0]
    conversation += [
        first.to_message(),
        {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": '{"eta": "1d"}'},
    ]
    final = await model.respond(_ask(*conversation, tools=[LOOKUP]))

    assert first.finish_reason == "tool_calls" and first.content is None
    assert call.name == "lookup_order" and call.parsed_arguments() == {"order_id": "A-1"}
    assert final.content == "Order A-1 ships tomorrow."
    sent = fake.requests[1].body
    assert sent["tools"][0] == {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by id.",
            "parameters": LOOKUP.parameters,
        },
    }
    assert sent["messages"][1]["tool_calls"] == [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"order_id": "A-1"}'},
        }
    ]
    assert sent["messages"][2] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": '{"eta": "1d"}',
    }


async def test_several_tool_calls_in_one_turn_keep_their_order_and_errors_are_marked() -> None:
    fake = FakeProvider(
        [
            {
                "tool_calls": [
                    {"name": "lookup_order", "arguments": {"order_id": "A-1"}},
                    {"name": "weather", "arguments": {"city": "Oslo"}},
                ]
            },
            "Done.",
        ]
    )
    model = fake.openai_model()

    first = await model.respond(_ask(tools=[LOOKUP, WEATHER]))
    a, b = first.tool_calls
    await model.respond(
        _ask(
            {"role": "user", "content": "both please"},
            first.to_message(),
            {"role": "tool", "tool_call_id": a.id, "name": a.name, "content": "shipped"},
            {"role": "tool", "tool_call_id": b.id, "name": b.name, "content": "no such city",
             "is_error": True},
            tools=[LOOKUP, WEATHER],
        )
    )  # fmt: skip

    assert [c.name for c in first.tool_calls] == ["lookup_order", "weather"]
    assert a.id != b.id
    sent = fake.requests[1].body
    assert sent["tools"][1]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert [m.get("content") for m in sent["messages"][2:]] == ["shipped", "Error: no such city"]


async def test_structured_output_uses_a_strict_json_schema_when_the_schema_allows() -> None:
    schema = {
        "title": "Triage result",
        "type": "object",
        "properties": {"category": {"type": "string"}},
        "required": ["category"],
        "additionalProperties": False,
    }
    fake = FakeProvider([{"output": {"category": "billing"}}, {"output": ["a", "b"]}])
    model = fake.openai_model()

    response = await model.respond(_ask(output_schema=schema))
    listed = await model.respond(_ask(output_schema={"type": "array", "items": {"type": "string"}}))

    assert json.loads(response.content or "") == {"category": "billing"}
    assert fake.requests[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Triage_result", "schema": schema, "strict": True},
    }
    # a non-object root is wrapped on the way out and unwrapped on the way back
    wrapped = fake.requests[1].body["response_format"]["json_schema"]
    assert wrapped["schema"]["properties"]["value"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    assert json.loads(listed.content or "") == ["a", "b"]


async def test_an_open_schema_is_sent_without_strict_mode() -> None:
    fake = FakeProvider([{"output": {"x": 1}}])

    await fake.openai_model().respond(
        _ask(output_schema={"type": "object", "properties": {"x": {"type": "integer"}}})
    )

    assert fake.requests[0].body["response_format"]["json_schema"]["strict"] is False


async def test_settings_map_to_chat_completions_parameters() -> None:
    fake = FakeProvider(["ok", "ok"])
    settings = ModelSettings(
        temperature=0.2, top_p=0.9, max_tokens=50, stop=("END",), extra={"seed": 7}
    )

    await fake.openai_model().respond(_ask(settings=settings))
    body = fake.requests[0].body

    assert (body["temperature"], body["top_p"], body["stop"], body["seed"]) == (
        0.2,
        0.9,
        ["END"],
        7,
    )
    # the fake is not api.openai.com, so it is treated as a compatible server
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body


async def test_openai_itself_gets_max_completion_tokens() -> None:
    fake = FakeProvider(["ok"])
    model = OpenAIModel(
        "o3-mini",
        ProviderSettings(api_key=KEY, base_url="https://api.openai.com/v1"),
        http_client=fake.http_client(),
    )

    await model.respond(_ask(settings=ModelSettings(max_tokens=64)))

    assert fake.requests[0].body["max_completion_tokens"] == 64
    assert "max_tokens" not in fake.requests[0].body


async def test_a_streamed_answer_is_assembled_from_its_chunks() -> None:
    fake = FakeProvider(
        [
            {
                "content": "Checking both.",
                "tool_calls": [
                    {"name": "lookup_order", "arguments": {"order_id": "A-1234567"}},
                    {"name": "weather", "arguments": {"city": "Reykjavik"}},
                ],
            },
            "A fairly long final answer, streamed in small pieces.",
        ]
    )
    model = fake.openai_model(stream=True)

    first = await model.respond(_ask(tools=[LOOKUP, WEATHER]))
    second = await model.respond(_ask())

    assert fake.requests[0].body["stream"] is True
    assert first.content == "Checking both." and first.finish_reason == "tool_calls"
    assert [(c.name, c.parsed_arguments()) for c in first.tool_calls] == [
        ("lookup_order", {"order_id": "A-1234567"}),
        ("weather", {"city": "Reykjavik"}),
    ]
    assert first.tool_calls[0].id != first.tool_calls[1].id
    assert first.usage.input_tokens > 0
    assert second.content == "A fairly long final answer, streamed in small pieces."


async def test_a_refusal_is_the_answer_with_finish_reason_refusal() -> None:
    fake = FakeProvider([{"content": "I can't help with that.", "finish_reason": "refusal"}] * 2)

    plain = await fake.openai_model().respond(_ask())
    streamed = await fake.openai_model(stream=True).respond(_ask())

    for response in (plain, streamed):
        assert (response.content, response.finish_reason) == ("I can't help with that.", "refusal")


async def test_a_rate_limit_is_retried_after_retry_after_and_then_succeeds() -> None:
    fake = FakeProvider([FakeError(429, retry_after=0.01), "after the wait"])

    response = await fake.openai_model().respond(_ask())

    assert response.content == "after the wait"
    assert len(fake.requests) == 2
    assert fake.requests[1].headers["x-stainless-retry-count"] == "1"


async def test_a_server_error_is_retried() -> None:
    fake = FakeProvider([FakeError(500, headers={"retry-after-ms": "10"}), "recovered"])

    assert (await fake.openai_model().respond(_ask())).content == "recovered"
    assert len(fake.requests) == 2


async def test_when_the_retries_run_out_the_error_is_retryable_for_the_durable_layer() -> None:
    fake = FakeProvider([FakeError(503, retry_after=0.01)] * 2)

    with pytest.raises(ModelError) as raised:
        await fake.openai_model(max_retries=1).respond(_ask())

    error = raised.value
    assert (error.status, error.retryable, error.code) == (503, True, "server_error")
    assert "after 1 retry" in str(error) and "temporarily unavailable" in str(error)
    assert len(fake.requests) == 2


async def test_a_retry_after_beyond_two_minutes_fails_at_once_as_retryable() -> None:
    fake = FakeProvider([FakeError(429, retry_after=3600)])

    with pytest.raises(ModelError) as raised:
        await fake.openai_model().respond(_ask())

    assert raised.value.retryable and raised.value.code == "rate_limited"
    assert "wait 3600 s" in str(raised.value)
    assert len(fake.requests) == 1


async def test_a_wrong_key_names_the_variable_without_showing_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-wrong-key-0123456789"
    fake = FakeProvider([FakeError(401, message=f"Incorrect API key provided: {secret}.")])
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ModelError) as raised:
        await fake.openai_model(api_key=secret).respond(_ask())

    error = raised.value
    assert (error.status, error.retryable, error.code) == (401, False, "authentication")
    assert "OPENAI_API_KEY" in str(error) and secret not in str(error)
    assert len(fake.requests) == 1
    assert fake.requests[0].api_key == secret
    assert secret not in caplog.text


async def test_an_unknown_model_fails_at_once_with_the_providers_message() -> None:
    fake = FakeProvider([FakeError(404)])

    with pytest.raises(ModelError) as raised:
        await fake.openai_model("gpt-nope").respond(_ask())

    assert raised.value.code == "model_not_found" and not raised.value.retryable
    assert "The model `gpt-nope` does not exist" in str(raised.value)
    assert "req_fake_" in str(raised.value)
    assert len(fake.requests) == 1


async def test_a_conversation_that_is_too_long_fails_at_once() -> None:
    fake = FakeProvider([FakeError.context_length_exceeded()])

    with pytest.raises(ModelError) as raised:
        await fake.openai_model().respond(_ask())

    assert raised.value.code == "context_length_exceeded" and raised.value.status == 400
    assert "maximum context length is 128000 tokens" in str(raised.value)
    assert not raised.value.retryable
    assert len(fake.requests) == 1


async def test_an_unscripted_request_gets_a_clear_400_from_the_fake() -> None:
    fake = FakeProvider()

    with pytest.raises(ModelError, match="no scripted turn left for model 'gpt-4o-mini'"):
        await fake.openai_model().respond(_ask())


async def test_turns_can_be_scripted_per_model() -> None:
    fake = FakeProvider(["shared"]).script(["for mini"], model="gpt-4o-mini")

    mini = await fake.openai_model("gpt-4o-mini").respond(_ask())
    other = await fake.openai_model("gpt-4o").respond(_ask())

    assert (mini.content, other.content) == ("for mini", "shared")
    assert fake.remaining() == 0 and fake.remaining("gpt-4o-mini") == 0


async def test_the_environment_variables_choose_the_key_and_the_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeProvider(["from the env"], api_key="sk-env-key-42")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-42")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://fake-provider.invalid/v1")

    model = OpenAIModel("gpt-4o-mini", http_client=fake.http_client())
    response = await model.respond(_ask())

    assert response.content == "from the env"
    assert fake.requests[0].api_key == "sk-env-key-42"


async def test_api_key_env_names_another_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProvider(["ok"], api_key="sk-litellm-key")
    monkeypatch.setenv("LITELLM_KEY", "sk-litellm-key")
    settings = ProviderSettings(api_key_env="LITELLM_KEY", base_url="http://proxy.invalid/v1")

    await OpenAIModel("claude-via-proxy", settings, http_client=fake.http_client()).respond(_ask())

    assert fake.requests[0].api_key == "sk-litellm-key"


async def test_a_missing_key_fails_before_any_request_and_names_the_variable() -> None:
    fake = FakeProvider(["never"])
    model = OpenAIModel("gpt-4o-mini", http_client=fake.http_client())

    with pytest.raises(ModelError) as raised:
        await model.respond(_ask())

    assert raised.value.code == "missing_api_key" and "OPENAI_API_KEY" in str(raised.value)
    assert fake.requests == []


async def test_a_compatible_server_needs_no_key() -> None:
    fake = FakeProvider(["from llama"])
    model = fake.openai_model("llama3.1", api_key=None)

    assert (await model.respond(_ask())).content == "from llama"


async def test_a_missing_sdk_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)

    with pytest.raises(ModelError) as raised:
        await OpenAIModel("gpt-4o", ProviderSettings(api_key=KEY)).respond(_ask())

    assert 'pip install "dwf[ai]"' in str(raised.value) and raised.value.code == "missing_sdk"


async def test_moderation_goes_through_the_sdk_with_scripted_results() -> None:
    fake = FakeProvider(moderations=[["harassment", "violence/graphic"], False])
    model = fake.openai_model()

    flagged = await model.moderate("something nasty")
    clean = await model.moderate("hello")
    unscripted = await model.moderate("hello again")

    assert flagged.flagged and flagged.categories == ("harassment", "violence/graphic")
    assert flagged.scores["harassment"] > 0.5
    assert not clean.flagged and clean.categories == ()
    assert not unscripted.flagged
    assert fake.requests[0].path == "/v1/moderations"
    assert fake.requests[0].body == {"input": "something nasty", "model": "omni-moderation-latest"}


async def test_a_moderation_error_is_a_model_error() -> None:
    fake = FakeProvider(moderations=[FakeError(401)])

    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        await fake.openai_model().moderate("text")


async def test_nothing_dwf_logs_contains_the_prompt_the_answer_or_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeProvider(["SECRET-ANSWER"])
    caplog.set_level(logging.DEBUG, logger="dwf")

    await fake.openai_model(api_key="sk-logged-never-123").respond(
        _ask({"role": "user", "content": "SECRET-PROMPT"})
    )

    dwf_records = [r.getMessage() for r in caplog.records if r.name.startswith("dwf")]
    assert dwf_records  # metadata is logged
    text = "\n".join(dwf_records)
    assert "SECRET" not in text and "sk-logged-never-123" not in text
