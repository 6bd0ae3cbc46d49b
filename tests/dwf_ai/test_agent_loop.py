"""The agent loop: the tool-calling protocol, concurrency, tool errors, limits, output, usage."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

import dwf
from dwf_ai import AIExtension, ToolRegistry, tool
from dwf_ai.models.base import ModelError
from dwf_ai.testing import ScriptedModel

HEADER = """
id: w
name: W
agents:
  - id: helper
    model: m
    instructions: You help with orders.
    temperature: 0.3
    max_tokens: 200
    model_settings: {seed: 7}
    tools: [lookup_order, refund_order, explode]
tools:
  - id: lookup_order
    description: Look up an order
    parameters:
      - {name: order_id, type: string, required: true, description: The order id}
    service: Orders
    method: lookup
  - id: refund_order
    description: Refund an order
    parameters:
      - {name: order_id, type: string, required: true}
      - {name: amount, type: number}
    service: Orders
    method: refund
  - id: explode
    description: Always fails
    service: Orders
    method: explode
"""

ONE_STEP = (
    HEADER
    + """
steps:
  - id: ask
    type: agent
    agent_id: helper
    prompt: "Customer says: $input.message"
    output: answer
    next: end
  - {id: end, type: end, result: {answer: $answer, usage: $_usage, agent: $_current_agent}}
"""
)


class Orders:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def lookup(self, order_id: str) -> dict[str, Any]:
        self.calls.append(("lookup", order_id))
        return {"order_id": order_id, "status": "shipped"}

    def refund(self, order_id: str, amount: float | None = None) -> dict[str, Any]:
        self.calls.append(("refund", order_id))
        return {"refunded": order_id, "amount": amount}

    def classify(self, category: str) -> dict[str, Any]:
        self.calls.append(("classify", category))
        return {"category": category}

    def explode(self) -> None:
        raise RuntimeError("the warehouse is on fire")


def setup(
    text: str,
    models: dict[str, Any],
    *,
    tools: ToolRegistry | None = None,
    services: dict[str, Any] | None = None,
) -> tuple[dwf.WorkflowDefinition, dwf.Engine, list[dwf.Event]]:
    registry = dwf.default_registry()
    registry.install(AIExtension(models=models, tools=tools))
    workflow = dwf.load_workflow(text, registry=registry)
    events: list[dwf.Event] = []
    engine = dwf.Engine(
        "memory://",
        registry=registry,
        services=services if services is not None else {"Orders": Orders()},
        on_event=events.append,
    )
    return workflow, engine, events


def with_option(text: str, output: str, option: str) -> str:
    """``text`` with the YAML line ``option`` added to the step whose output is ``output``."""
    return text.replace(f"output: {output}\n", f"output: {output}\n    {option}\n")


def calls(*names_and_arguments: tuple[str, Any]) -> dict[str, Any]:
    """A scripted turn calling tools."""
    return {"tool_calls": [{"name": n, "arguments": a} for n, a in names_and_arguments]}


LOOKUP_A = calls(("lookup_order", {"order_id": "A"}))


def agent_events(events: list[dwf.Event]) -> list[str]:
    return [e.type for e in events if e.type.startswith("agent.")]


async def test_the_conversation_keeps_instructions_tool_call_ids_and_every_result() -> None:
    model = ScriptedModel(
        [
            {
                "tool_calls": [
                    {"name": "lookup_order", "arguments": {"order_id": "A-1"}, "id": "c1"},
                    {"name": "lookup_order", "arguments": {"order_id": "A-2"}, "id": "c2"},
                ]
            },
            {
                "tool_calls": [
                    {"name": "refund_order", "arguments": {"order_id": "A-1"}, "id": "c3"}
                ]
            },
            "A-1 was refunded; A-2 has shipped.",
        ]
    )
    workflow, engine, _ = setup(ONE_STEP, {"m": model})
    result = await engine.run(workflow, {"message": "refund A-1, where is A-2?"})

    assert result.status == "completed"
    assert result.output["answer"] == "A-1 was refunded; A-2 has shipped."
    last = model.requests[-1].messages
    assert last[0] == {"role": "system", "content": "You help with orders."}
    assert last[1] == {"role": "user", "content": "Customer says: refund A-1, where is A-2?"}
    assert last[2]["role"] == "assistant"
    assert [c["id"] for c in last[2]["tool_calls"]] == ["c1", "c2"]
    assert [(m["role"], m["tool_call_id"]) for m in last[3:5]] == [("tool", "c1"), ("tool", "c2")]
    assert json.loads(last[3]["content"]) == {"order_id": "A-1", "status": "shipped"}
    assert json.loads(last[4]["content"]) == {"order_id": "A-2", "status": "shipped"}
    assert last[5]["tool_calls"][0]["id"] == "c3"
    assert last[6]["tool_call_id"] == "c3" and last[6]["is_error"] is False
    assert len(last) == 7  # the whole conversation, each message once

    request = model.requests[0]
    assert [t.name for t in request.tools] == ["lookup_order", "refund_order", "explode"]
    assert request.tools[0].parameters["required"] == ["order_id"]
    assert (request.settings.temperature, request.settings.max_tokens) == (0.3, 200)
    assert request.settings.extra == {"seed": 7}
    assert request.output_schema is None


async def test_several_tool_calls_in_one_turn_run_concurrently() -> None:
    order: list[str] = []
    a_started, b_started = asyncio.Event(), asyncio.Event()

    @tool
    async def first() -> str:
        """Waits for the second one to start."""
        order.append("first started")
        a_started.set()
        await asyncio.wait_for(b_started.wait(), 5)
        order.append("first done")
        return "1"

    @tool
    async def second() -> str:
        """Waits for the first one to start."""
        await asyncio.wait_for(a_started.wait(), 5)
        order.append("second started")
        b_started.set()
        order.append("second done")
        return "2"

    model = ScriptedModel([calls(("first", {}), ("second", {})), "both done"])
    text = """
id: w
name: W
agents:
  - {id: a, model: m, tools: [first, second]}
steps:
  - {id: ask, type: agent, agent_id: a, prompt: go, output: answer}
"""
    workflow, engine, _ = setup(text, {"m": model}, tools=ToolRegistry([first, second]))
    result = await engine.run(workflow)
    assert result.status == "completed"
    # Sequential calls would have deadlocked: each one waits for the other to start.
    assert order == ["first started", "second started", "second done", "first done"]
    # The results go back in the order of the calls, whatever order they finished in.
    assert [m.get("content") for m in model.requests[1].messages[-2:]] == ["1", "2"]


async def test_a_tool_that_raises_returns_an_error_to_the_model_and_an_event() -> None:
    model = ScriptedModel(
        [{"tool_calls": [{"name": "explode", "arguments": {}, "id": "boom"}]}, "Sorry about that."]
    )
    workflow, engine, events = setup(ONE_STEP, {"m": model})
    result = await engine.run(workflow, {"message": "hi"})

    assert result.status == "completed"
    tool_message = model.requests[1].messages[-1]
    assert tool_message["is_error"] is True
    assert tool_message["content"] == (
        "Error: tool 'explode' failed: RuntimeError: the warehouse is on fire"
    )
    failed = [e.data for e in events if e.type == "agent.tool_result"]
    assert failed[0]["is_error"] is True and failed[0]["error"] == "failed"
    entries = await engine.entries(result.execution_id)
    audit = next(e.output for e in entries if e.step_id == "ask" and e.action == "completed")
    assert (audit["tool_calls"], audit["tool_errors"]) == (1, 1)


async def test_an_unknown_tool_returns_an_error_naming_the_available_tools() -> None:
    model = ScriptedModel([{"tool_calls": [{"name": "teleport", "arguments": {}}]}, "I cannot."])
    workflow, engine, _ = setup(ONE_STEP, {"m": model})
    result = await engine.run(workflow, {"message": "hi"})
    assert result.status == "completed"
    assert model.requests[1].messages[-1]["content"] == (
        "Error: there is no tool 'teleport'. Available tools: lookup_order, refund_order, explode."
    )


async def test_malformed_arguments_are_returned_to_the_model_and_counted_not_raised() -> None:
    model = ScriptedModel(
        [
            {
                "tool_calls": [
                    {"name": "lookup_order", "arguments": "{not json"},
                    {"name": "lookup_order", "arguments": {"order_id": 42}},
                    {"name": "lookup_order", "arguments": {}},
                    {"name": "refund_order", "arguments": {"order_id": "A", "colour": "red"}},
                    {"name": "lookup_order", "arguments": "[1, 2]"},
                ]
            },
            "Let me try again later.",
        ]
    )
    orders = Orders()
    workflow, engine, _ = setup(ONE_STEP, {"m": model}, services={"Orders": orders})
    result = await engine.run(workflow, {"message": "hi"})

    assert result.status == "completed"
    assert orders.calls == []  # nothing ran with bad arguments
    results = [m["content"] for m in model.requests[1].messages if m["role"] == "tool"]
    assert all(m["is_error"] for m in model.requests[1].messages if m["role"] == "tool")
    assert results[0].startswith(
        "Error: invalid arguments for tool 'lookup_order': the arguments are not valid JSON"
    )
    assert "order_id: 42 is not of type 'string'" in results[1]
    assert "(arguments): 'order_id' is a required property" in results[2]
    assert "Additional properties are not allowed ('colour' was unexpected)" in results[3]
    assert "the arguments must be a JSON object, got list" in results[4]
    assert results[0].endswith("Call it again with arguments that match its JSON Schema.")
    entries = await engine.entries(result.execution_id)
    audit = next(e.output for e in entries if e.step_id == "ask" and e.action == "completed")
    assert (audit["tool_errors"], audit["invalid_arguments"]) == (5, 5)


async def test_max_turns_ends_the_step_with_a_clear_failure() -> None:
    model = ScriptedModel([LOOKUP_A] * 3)
    text = with_option(ONE_STEP, "answer", "max_turns: 3")
    workflow, engine, _ = setup(text, {"m": model})
    result = await engine.run(workflow, {"message": "hi"})

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "MaxTurnsExceeded"
    assert result.error["message"].startswith(
        "agent 'helper' reached max_turns (3) without a final answer; raise 'max_turns'"
    )
    assert len(model.requests) == 3


async def test_the_default_max_turns_is_ten() -> None:
    model = ScriptedModel([LOOKUP_A] * 10)
    workflow, engine, _ = setup(ONE_STEP, {"m": model})
    result = await engine.run(workflow, {"message": "hi"})
    assert result.error is not None and "max_turns (10)" in result.error["message"]


ROUTED = """
id: w
name: W
agents:
  - id: triage
    model: m
    tools: [classify]
tools:
  - id: classify
    description: Record the classification
    parameters:
      - {name: category, type: string}
    service: Orders
    method: classify
steps:
  - id: triage
    type: agent
    agent_id: triage
    prompt: "$input.message"
    output: triage_result
    next: route
  - id: route
    type: router
    routes:
      - {when: {field: triage_result.category, op: eq, value: billing}, then: billing}
    default: other
  - {id: billing, type: end, result: {went: billing, triage: $triage_result}}
  - {id: other, type: end, result: {went: other, triage: $triage_result}}
"""


async def test_an_answer_that_is_a_json_object_is_stored_as_an_object_a_router_can_read() -> None:
    fenced = '```json\n{"category": "billing", "urgency": "high"}\n```'
    workflow, engine, _ = setup(ROUTED, {"m": ScriptedModel([fenced])})
    result = await engine.run(workflow, {"message": "I was charged twice"})
    assert result.output == {
        "went": "billing",
        "triage": {"category": "billing", "urgency": "high"},
    }

    workflow, engine, _ = setup(ROUTED, {"m": ScriptedModel(["It is about billing."])})
    result = await engine.run(workflow, {"message": "I was charged twice"})
    assert result.output == {"went": "other", "triage": "It is about billing."}  # text stays text


async def test_an_output_schema_asks_for_structured_output_and_corrects_a_bad_answer() -> None:
    schema = {
        "type": "object",
        "properties": {"category": {"enum": ["billing", "technical", "general"]}},
        "required": ["category"],
    }
    model = ScriptedModel(
        [{"output": {"category": "shipping"}}, {"output": {"category": "billing"}}]
    )
    text = with_option(ROUTED, "triage_result", f"output_schema: {json.dumps(schema)}")
    workflow, engine, _ = setup(text, {"m": model})
    result = await engine.run(workflow, {"message": "I was charged twice"})

    assert result.output == {"went": "billing", "triage": {"category": "billing"}}
    assert model.requests[0].output_schema == schema
    correction = model.requests[1].messages[-1]
    assert correction["role"] == "user"
    assert correction["content"].startswith(
        "Your answer does not match the required JSON Schema: category: 'shipping' is not one of"
    )


async def test_an_output_schema_on_the_agent_applies_to_its_steps() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    text = f"""
id: w
name: W
agents:
  - {{id: counter, model: m, output_schema: {json.dumps(schema)}}}
steps:
  - {{id: count, type: agent, agent_id: counter, prompt: count, output: counted}}
"""
    model = ScriptedModel(["not json", {"output": {"n": 3}}])
    workflow, engine, _ = setup(text, {"m": model})
    result = await engine.run(workflow)
    record = await engine.get(result.execution_id)
    assert record.variables["counted"] == {"n": 3}
    assert (
        model.requests[1]
        .messages[-1]["content"]
        .startswith("Your answer does not match the required JSON Schema: it is not valid JSON")
    )


async def test_with_output_tool_the_tools_arguments_are_the_output_and_the_loop_ends() -> None:
    orders = Orders()
    model = ScriptedModel([calls(("classify", {"category": "billing"}))])
    text = with_option(ROUTED, "triage_result", "output_tool: classify")
    workflow, engine, _ = setup(text, {"m": model}, services={"Orders": orders})
    result = await engine.run(workflow, {"message": "I was charged twice"})

    assert result.output == {"went": "billing", "triage": {"category": "billing"}}
    assert orders.calls == [("classify", "billing")]  # the tool itself still ran
    assert len(model.requests) == 1  # no further model call


async def test_token_usage_is_recorded_per_step_and_summed_per_execution() -> None:
    model = ScriptedModel(
        [
            {**LOOKUP_A, "usage": {"input_tokens": 100, "output_tokens": 10}},
            {"content": "first", "usage": {"input_tokens": 150, "output_tokens": 20}},
            {"content": "second", "usage": {"input_tokens": 50, "output_tokens": 5}},
        ]
    )
    text = (
        HEADER
        + """
steps:
  - {id: one, type: agent, agent_id: helper, prompt: a, output: first, next: two}
  - {id: two, type: agent, agent_id: helper, prompt: b, output: second, next: end}
  - {id: end, type: end, result: {usage: $_usage}}
"""
    )
    workflow, engine, _ = setup(text, {"m": model})
    result = await engine.run(workflow)

    assert result.output == {"usage": {"input_tokens": 300, "output_tokens": 35, "model_calls": 3}}
    entries = await engine.entries(result.execution_id)
    audits = {e.step_id: e.output for e in entries if e.action == "completed"}
    assert audits["one"]["usage"] == {"input_tokens": 250, "output_tokens": 30, "model_calls": 2}
    assert audits["two"]["usage"] == {"input_tokens": 50, "output_tokens": 5, "model_calls": 1}
    assert audits["one"]["turns"] == 2 and audits["one"]["output"] == "first"


async def test_events_describe_each_turn_call_result_and_the_end() -> None:
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A"}, "id": "c1"}]},
            "Shipped.",
        ]
    )
    workflow, engine, events = setup(ONE_STEP, {"m": model})
    await engine.run(workflow, {"message": "where is A?"})

    assert agent_events(events) == [
        "agent.started",
        "agent.model_response",
        "agent.tool_call",
        "agent.tool_result",
        "agent.model_response",
        "agent.completed",
    ]
    by_type = {e.type: e for e in events}
    assert by_type["agent.started"].data == {"agent": "helper", "model": "m"}
    assert by_type["agent.started"].step_id == "ask"
    assert by_type["agent.tool_call"].data == {
        "agent": "helper",
        "tool": "lookup_order",
        "tool_call_id": "c1",
        "arguments": {"order_id": "A"},
    }
    assert by_type["agent.completed"].data["output"] == "Shipped."
    for event in events:
        assert "key" not in json.dumps(event.data).lower()


async def test_a_tool_bound_to_an_unregistered_service_fails_the_step() -> None:
    model = ScriptedModel([LOOKUP_A])
    workflow, engine, _ = setup(ONE_STEP, {"m": model}, services={})
    result = await engine.run(workflow, {"message": "hi"})
    assert result.status == "failed"
    assert result.error is not None
    message = result.error["message"]
    assert "tool 'lookup_order' of agent 'helper' cannot run: unknown service 'Orders'" in message


async def test_a_retryable_model_error_retries_the_step_without_repeating_journaled_turns() -> None:
    orders = Orders()
    model = ScriptedModel(
        [
            LOOKUP_A,
            ModelError("overloaded", status=529, retryable=True),
            "Shipped.",
        ]
    )
    text = with_option(ONE_STEP, "answer", "retries: 1\n    retry_delay: 0")
    workflow, engine, _ = setup(text, {"m": model}, services={"Orders": orders})
    result = await engine.run(workflow, {"message": "hi"})

    assert result.status == "completed"
    assert result.output["answer"] == "Shipped."
    assert len(model.requests) == 3  # turn 1 once, turn 2 failed once and then answered
    assert orders.calls == [("lookup", "A")]  # the tool was not run again


async def test_a_model_error_that_is_not_retryable_fails_the_step_with_its_reason() -> None:
    model = ScriptedModel([ModelError("invalid api key", status=401, code="authentication")])
    workflow, engine, _ = setup(ONE_STEP, {"m": model})
    result = await engine.run(workflow, {"message": "hi"})
    assert result.error is not None
    assert result.error["type"] == "NonRetryableError"
    assert result.error["message"] == "agent 'helper': model 'scripted' failed: invalid api key"


@pytest.mark.parametrize("name", ["nonexistent-model-xyz"])
async def test_an_unknown_model_name_fails_the_step_with_the_resolution_rules(name: str) -> None:
    workflow, engine, _ = setup(ONE_STEP.replace("model: m", f"model: {name}"), {})
    result = await engine.run(workflow, {"message": "hi"})
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["message"].startswith("agent 'helper': ")
    assert name in result.error["message"]


def test_the_runnable_example_of_docs_ai_md_runs_offline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (Path(__file__).parents[2] / "docs" / "ai.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match is not None
    exec(compile(match.group(1), "docs/ai.md", "exec"), {"__name__": "docs_ai_example"})
    assert capsys.readouterr().out.splitlines() == [
        "{'category': 'billing', 'urgency': 'high'}",
        "Order A-1 has shipped.",
        "{'input_tokens': 0, 'output_tokens': 0, 'model_calls': 3}",
    ]
