"""AnthropicModel runs the real anthropic SDK against the FakeProvider, in-process."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from dwf_ai.models import AnthropicModel, ModelError, ModelRequest, ModelSettings, ProviderSettings
from dwf_ai.models import ToolSpec as Tool
from dwf_ai.models.anthropic import to_anthropic_messages
from dwf_ai.testing import FakeError, FakeProvider

LOOKUP = Tool(
    "lookup_order",
    "Find an order by id.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
WEATHER = Tool("weather", "The weather in a city.", {})
KEY = "sk-ant-fake-anthropic-key"
SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string"}, "urgent": {"type": "boolean"}},
    "required": ["category"],
}


def _ask(*messages: dict[str, object], **kwargs: object) -> ModelRequest:
    conversation = list(messages) or [{"role": "user", "content": "Where is my order A-1?"}]
    return ModelRequest("claude-sonnet-5", conversation, **kwargs)  # type: ignore[arg-type]


async def test_a_text_answer_comes_back_and_the_system_prompt_is_separate() -> None:
    fake = FakeProvider(["It ships tomorrow."], api_key=KEY)

    response = await fake.anthropic_model().respond(
        _ask(
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "When does it ship?"},
        )
    )

    assert response.content == "It ships tomorrow."
    assert response.finish_reason == "stop" and response.model == "claude-sonnet-5"
    assert response.usage.input_tokens > 0
    sent = fake.requests[0]
    assert sent.path == "/v1/messages" and sent.api_key == KEY
    assert sent.body["system"] == "You are terse."
    assert sent.body["max_tokens"] == 4096
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "When does it ship?"}]}
    ]


async def test_tool_calls_round_trip_as_tool_use_and_tool_result_blocks() -> None:
    fake = FakeProvider(
        [
            {
                "content": "Looking both up.",
                "tool_calls": [
                    {"name": "lookup_order", "arguments": {"order_id": "A-1"}},
                    {"name": "weather", "arguments": {"city": "Oslo"}},
                ],
            },
            "A-1 ships tomorrow; Oslo is unknown.",
        ]
    )
    model = fake.anthropic_model()
    conversation: list[dict[str, object]] = [{"role": "user", "content": "A-1 and Oslo?"}]

    first = await model.respond(_ask(*conversation, tools=[LOOKUP, WEATHER]))
    a, b = first.tool_calls
    conversation += [
        first.to_message(),
        {"role": "tool", "tool_call_id": a.id, "name": a.name, "content": "shipped"},
        {"role": "tool", "tool_call_id": b.id, "name": b.name, "content": "no such city",
         "is_error": True},
        {"role": "user", "content": "Thanks!"},
    ]  # fmt: skip
    final = await model.respond(_ask(*conversation, tools=[LOOKUP, WEATHER]))

    assert first.content == "Looking both up." and first.finish_reason == "tool_calls"
    assert [(c.name, c.parsed_arguments()) for c in first.tool_calls] == [
        ("lookup_order", {"order_id": "A-1"}),
        ("weather", {"city": "Oslo"}),
    ]
    assert a.id.startswith("toolu_") and a.id != b.id
    assert final.content == "A-1 ships tomorrow; Oslo is unknown."
    sent = fake.requests[1].body
    assert sent["tools"][0] == {
        "name": "lookup_order",
        "description": "Find an order by id.",
        "input_schema": LOOKUP.parameters,
    }
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Looking both up."},
            {"type": "tool_use", "id": a.id, "name": "lookup_order", "input": {"order_id": "A-1"}},
            {"type": "tool_use", "id": b.id, "name": "weather", "input": {"city": "Oslo"}},
        ],
    }
    # both results and the follow-up text are one user turn, results first
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": a.id, "content": "shipped"},
            {"type": "tool_result", "tool_use_id": b.id, "content": "no such city",
             "is_error": True},
            {"type": "text", "text": "Thanks!"},
        ],
    }  # fmt: skip
    assert len(sent["messages"]) == 3


def test_broken_tool_arguments_are_replayed_as_an_empty_input() -> None:
    request = _ask(
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "t1", "name": "lookup_order", "arguments": "{broken"}]},
        {"role": "tool", "tool_call_id": "t1", "name": "lookup_order",
         "content": "the arguments are not valid JSON", "is_error": True},
    )  # fmt: skip

    system, messages = to_anthropic_messages(request)

    assert system == ""
    assert messages[1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "lookup_order", "input": {}}
    ]
    assert messages[2]["content"][0]["is_error"] is True


async def test_structured_output_is_a_forced_final_answer_tool() -> None:
    fake = FakeProvider([{"output": {"category": "billing", "urgent": True}}])

    response = await fake.anthropic_model().respond(_ask(output_schema=SCHEMA))

    assert json.loads(response.content or "") == {"category": "billing", "urgent": True}
    assert response.tool_calls == [] and response.finish_reason == "stop"
    sent = fake.requests[0].body
    assert sent["tool_choice"] == {"type": "tool", "name": "final_answer"}
    assert sent["tools"][-1]["name"] == "final_answer"
    assert sent["tools"][-1]["input_schema"] == SCHEMA


async def test_structured_output_beside_other_tools_still_lets_the_model_call_them() -> None:
    fake = FakeProvider(
        [
            {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}}]},
            {"output": {"category": "shipping"}},
        ]
    )
    model = fake.anthropic_model()

    first = await model.respond(_ask(tools=[LOOKUP], output_schema=SCHEMA))
    call = first.tool_calls[0]
    final = await model.respond(
        _ask(
            {"role": "user", "content": "A-1?"},
            first.to_message(),
            {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "late"},
            tools=[LOOKUP],
            output_schema=SCHEMA,
        )
    )

    assert fake.requests[0].body["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in fake.requests[0].body["tools"]] == ["lookup_order", "final_answer"]
    assert call.name == "lookup_order"
    assert json.loads(final.content or "") == {"category": "shipping"}


async def test_a_tool_named_final_answer_does_not_clash_with_structured_output() -> None:
    fake = FakeProvider([{"output": {"category": "x"}}])
    mine = Tool("final_answer", "A user tool that happens to have this name.", {})

    await fake.anthropic_model().respond(_ask(tools=[mine], output_schema=SCHEMA))

    assert [t["name"] for t in fake.requests[0].body["tools"]] == ["final_answer", "final_answer_2"]


async def test_native_structured_output_uses_output_config() -> None:
    fake = FakeProvider([{"output": ["a", "b"]}])
    schema = {"type": "array", "items": {"type": "string"}}

    response = await fake.anthropic_model(structured_output="native").respond(
        _ask(output_schema=schema)
    )

    sent = fake.requests[0].body
    assert sent["output_config"]["format"]["type"] == "json_schema"
    assert sent["output_config"]["format"]["schema"]["properties"]["value"] == schema
    assert "tool_choice" not in sent
    # the scripted answer was not wrapped, so it comes back as written
    assert json.loads(response.content or "") == ["a", "b"]


async def test_settings_map_to_messages_parameters() -> None:
    fake = FakeProvider(["ok"])
    settings = ModelSettings(temperature=0.1, top_p=0.8, max_tokens=99, stop=("END",))

    await fake.anthropic_model().respond(_ask(settings=settings))

    body = fake.requests[0].body
    assert (body["max_tokens"], body["stop_sequences"]) == (99, ["END"])
    assert (body["temperature"], body["top_p"]) == (0.1, 0.8)


async def test_a_streamed_answer_is_assembled_from_its_events() -> None:
    fake = FakeProvider(
        [
            {
                "content": "Checking both.",
                "tool_calls": [
                    {"name": "lookup_order", "arguments": {"order_id": "A-1234567"}},
                    {"name": "weather", "arguments": {"city": "Reykjavik"}},
                ],
            },
            {"output": {"category": "streamed"}},
        ]
    )
    model = fake.anthropic_model(stream=True)

    first = await model.respond(_ask(tools=[LOOKUP, WEATHER]))
    second = await model.respond(_ask(output_schema=SCHEMA))

    assert fake.requests[0].body["stream"] is True
    assert first.content == "Checking both." and first.finish_reason == "tool_calls"
    assert [(c.name, c.parsed_arguments()) for c in first.tool_calls] == [
        ("lookup_order", {"order_id": "A-1234567"}),
        ("weather", {"city": "Reykjavik"}),
    ]
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert json.loads(second.content or "") == {"category": "streamed"}


async def test_a_large_max_tokens_is_streamed_because_the_sdk_requires_it() -> None:
    fake = FakeProvider(["long answer"])

    response = await fake.anthropic_model().respond(_ask(settings=ModelSettings(max_tokens=64000)))

    assert response.content == "long answer"
    assert fake.requests[0].body["stream"] is True


async def test_a_rate_limit_is_retried_after_retry_after_and_then_succeeds() -> None:
    fake = FakeProvider([FakeError(429, retry_after=0.01), FakeError(529, retry_after=0), "ok"])

    response = await fake.anthropic_model().respond(_ask())

    assert response.content == "ok"
    assert len(fake.requests) == 3


async def test_a_retry_after_beyond_two_minutes_is_not_slept_on() -> None:
    fake = FakeProvider([FakeError(429, retry_after=3600)])

    with pytest.raises(ModelError) as raised:
        await fake.anthropic_model().respond(_ask())

    error = raised.value
    assert (error.status, error.retryable, error.code) == (429, True, "rate_limited")
    assert "wait 3600 s" in str(error)
    assert len(fake.requests) == 1


async def test_when_the_retries_run_out_the_error_is_retryable() -> None:
    fake = FakeProvider([FakeError(500, retry_after=0.01)] * 3)

    with pytest.raises(ModelError) as raised:
        await fake.anthropic_model().respond(_ask())

    assert (raised.value.status, raised.value.retryable) == (500, True)
    assert "after 2 retries" in str(raised.value)
    assert len(fake.requests) == 3


async def test_a_wrong_key_names_the_variable_without_showing_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeProvider(["never"], api_key=KEY)
    caplog.set_level(logging.DEBUG)
    wrong = "sk-ant-wrong-key-987654"

    with pytest.raises(ModelError) as raised:
        await fake.anthropic_model(api_key=wrong).respond(_ask())

    error = raised.value
    assert (error.status, error.code, error.retryable) == (401, "authentication", False)
    assert "invalid x-api-key" in str(error) and "ANTHROPIC_API_KEY" in str(error)
    assert wrong not in str(error) and wrong not in caplog.text
    assert len(fake.requests) == 1


async def test_an_unknown_model_and_a_long_prompt_fail_at_once() -> None:
    fake = FakeProvider([FakeError(404), FakeError.context_length_exceeded()])

    with pytest.raises(ModelError) as missing:
        await fake.anthropic_model("claude-nope").respond(_ask())
    with pytest.raises(ModelError) as too_long:
        await fake.anthropic_model().respond(_ask())

    assert missing.value.code == "model_not_found" and "claude-nope" in str(missing.value)
    assert too_long.value.code == "context_length_exceeded"
    assert "prompt is too long" in str(too_long.value)
    assert not missing.value.retryable and not too_long.value.retryable
    assert len(fake.requests) == 2


async def test_the_environment_variables_choose_the_key_and_the_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeProvider(["from the env"], api_key="sk-ant-env-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://fake-provider.invalid")

    model = AnthropicModel("claude-sonnet-5", http_client=fake.http_client())

    assert (await model.respond(_ask())).content == "from the env"
    assert fake.requests[0].api_key == "sk-ant-env-key"


async def test_a_missing_key_fails_before_any_request_and_names_the_variable() -> None:
    fake = FakeProvider(["never"])
    model = AnthropicModel("claude-sonnet-5", http_client=fake.http_client())

    with pytest.raises(ModelError) as raised:
        await model.respond(_ask())

    assert raised.value.code == "missing_api_key" and "ANTHROPIC_API_KEY" in str(raised.value)
    assert fake.requests == []


async def test_a_missing_sdk_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)

    with pytest.raises(ModelError, match=r'pip install "dwf\[ai\]"'):
        await AnthropicModel("claude-x", ProviderSettings(api_key=KEY)).respond(_ask())
