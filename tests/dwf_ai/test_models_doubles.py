"""The model test doubles: ScriptedModel, FunctionModel and ScriptedModerator."""

from __future__ import annotations

import json

import pytest

from dwf_ai.models import Model, ModelError, ModelRequest, ModelResponse, ModerationResult, Usage
from dwf_ai.models.base import Moderator, ToolCall
from dwf_ai.testing import FunctionModel, ScriptedModel, ScriptedModerator, ScriptExhaustedError


def _ask(text: str = "hi", *, model: str = "scripted") -> ModelRequest:
    return ModelRequest(model, [{"role": "user", "content": text}])


async def test_a_scripted_model_answers_its_turns_in_order_and_records_the_requests() -> None:
    model = ScriptedModel(["first", "second"], name="scripted:triage")
    assert isinstance(model, Model)

    one = await model.respond(_ask("a"))
    two = await model.respond(_ask("b"))

    assert (one.content, two.content) == ("first", "second")
    assert one.finish_reason == "stop" and one.model == "scripted:triage"
    assert [r.messages[0]["content"] for r in model.requests] == ["a", "b"]
    assert model.remaining == 0


async def test_a_scripted_tool_call_gets_an_id_and_json_arguments() -> None:
    model = ScriptedModel(
        [
            {
                "content": "Let me look.",
                "tool_calls": [
                    {"name": "lookup", "arguments": {"order_id": "A-1"}},
                    {"name": "weather", "arguments": {"city": "Paris"}, "id": "mine"},
                ],
            }
        ],
        name="scripted:triage",
    )

    response = await model.respond(_ask())

    assert response.content == "Let me look."
    assert response.finish_reason == "tool_calls"
    first, second = response.tool_calls
    assert first.id == "call_scripted_triage_1" and first.name == "lookup"
    assert first.parsed_arguments() == {"order_id": "A-1"}
    assert second.id == "mine"
    assert response.to_message()["tool_calls"][0] == {
        "id": "call_scripted_triage_1",
        "name": "lookup",
        "arguments": '{"order_id": "A-1"}',
    }


async def test_string_arguments_are_sent_as_written_even_when_they_are_not_json() -> None:
    model = ScriptedModel([{"tool_calls": [{"name": "lookup", "arguments": "{not json"}]}])

    call = (await model.respond(_ask())).tool_calls[0]

    assert call.arguments == "{not json"
    with pytest.raises(ValueError, match="not valid JSON"):
        call.parsed_arguments()


async def test_an_output_turn_is_a_structured_answer_as_json_text() -> None:
    model = ScriptedModel([{"output": {"category": "billing", "urgent": False}}])

    response = await model.respond(_ask())

    assert json.loads(response.content or "") == {"category": "billing", "urgent": False}


async def test_usage_and_model_responses_and_exceptions_can_be_scripted() -> None:
    given = ModelResponse("as is", [ToolCall("c1", "t", "{}")], Usage(3, 4), "tool_calls")
    model = ScriptedModel(
        [
            {"content": "counted", "usage": {"input_tokens": 12, "output_tokens": 5}},
            given,
            ModelError("overloaded", status=529, retryable=True),
        ]
    )

    assert (await model.respond(_ask())).usage == Usage(12, 5)
    second = await model.respond(_ask())
    assert second.tool_calls == [ToolCall("c1", "t", "{}")] and second.usage == Usage(3, 4)
    with pytest.raises(ModelError, match="overloaded") as raised:
        await model.respond(_ask())
    assert raised.value.retryable


async def test_a_scripted_model_that_runs_out_of_turns_says_so_clearly() -> None:
    model = ScriptedModel(["only"], name="scripted:triage")
    await model.respond(_ask())

    with pytest.raises(ScriptExhaustedError) as raised:
        await model.respond(_ask())

    message = str(raised.value)
    assert "'scripted:triage'" in message and "turn 2" in message and "given 1" in message
    assert isinstance(raised.value, ModelError) and raised.value.code == "script_exhausted"


@pytest.mark.parametrize(
    ("turn", "complaint"),
    [
        ({"text": "hi"}, "unknown key(s) 'text'"),
        ({"content": "a", "output": {}}, "not both"),
        ({"tool_calls": [{"arguments": {}}]}, "'name' must be a non-empty string"),
        ({"tool_calls": {"name": "x"}}, "must be a list"),
        ({}, "needs content, output or tool_calls"),
        (42, "not int"),
    ],
)
def test_a_malformed_turn_is_rejected_when_the_script_is_made(turn: object, complaint: str) -> None:
    with pytest.raises(ValueError, match="turn 1") as raised:
        ScriptedModel([turn])  # type: ignore[list-item]
    assert complaint in str(raised.value)


async def test_a_function_model_answers_with_what_a_sync_function_returns() -> None:
    def reply(request: ModelRequest) -> object:
        last = request.messages[-1]
        if last["role"] == "tool":
            return f"The order is {last['content']}."
        return {"tool_calls": [{"name": "lookup", "arguments": {"id": 7}}]}

    model = FunctionModel(reply, name="fn")  # type: ignore[arg-type]
    first = await model.respond(_ask())
    call = first.tool_calls[0]
    conversation = [
        {"role": "user", "content": "where is 7?"},
        first.to_message(),
        {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "shipped"},
    ]
    second = await model.respond(ModelRequest("fn", conversation))

    assert call.id == "call_fn_1"
    assert second.content == "The order is shipped."
    assert len(model.requests) == 2


async def test_a_function_model_accepts_an_async_function() -> None:
    async def reply(request: ModelRequest) -> str:
        return f"{len(request.messages)} message(s)"

    assert (await FunctionModel(reply).respond(_ask())).content == "1 message(s)"


async def test_a_function_model_reports_a_bad_turn_with_the_request_number() -> None:
    model = FunctionModel(lambda request: {"nope": 1}, name="fn")

    with pytest.raises(ValueError, match="fn: the turn returned for request 1"):
        await model.respond(_ask())


async def test_a_scripted_moderator_answers_in_order_and_records_the_texts() -> None:
    moderator = ScriptedModerator(
        [False, ["harassment"], ModerationResult(True, ("violence",), {"violence": 0.9})]
    )
    assert isinstance(moderator, Moderator)

    results = [await moderator.moderate(t) for t in ("a", "b", "c")]

    assert [r.flagged for r in results] == [False, True, True]
    assert results[1].categories == ("harassment",)
    assert results[2].to_dict() == {
        "flagged": True,
        "categories": ["violence"],
        "scores": {"violence": 0.9},
    }
    assert moderator.texts == ["a", "b", "c"]
    with pytest.raises(ScriptExhaustedError):
        await moderator.moderate("d")
