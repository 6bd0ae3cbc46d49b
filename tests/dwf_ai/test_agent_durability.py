"""Durability of the agent loop: crashes and halts mid-loop repeat no model call and no tool.

A "crash" is the engine's task being cancelled in the middle of the loop (nothing after the
last checkpoint reaches the store); a second engine on the same store recovers the execution
once the first one's lease has expired, as in tests/dwf/test_durability.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import dwf
from dwf.storage import open_store
from dwf.storage.base import Checkpoint, Status, Store
from dwf_ai import AIExtension, ToolRegistry, tool
from dwf_ai.models.base import ModelRequest
from dwf_ai.testing import FunctionModel, ScriptedModel


class Clock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Gate:
    """Lets a test hold a tool or a model call until it has crashed the engine."""

    def __init__(self) -> None:
        self.closed = True
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    async def pass_through(self) -> None:
        self.entered.set()
        if self.closed:
            await self.opened.wait()

    def open(self) -> None:
        self.closed = False
        self.opened.set()


WORKFLOW = """
id: w
name: W
agents:
  - {id: a, model: m, tools: [fast, slow]}
steps:
  - {id: ask, type: agent, agent_id: a, prompt: go, output: answer, next: end}
  - {id: end, type: end, result: {answer: $answer}}
"""


def python_tools(calls: list[tuple[str, str]], gate: Gate) -> ToolRegistry:
    @tool
    async def fast(idempotency_key: str) -> str:
        """Returns at once."""
        calls.append(("fast", idempotency_key))
        return "fast done"

    @tool
    async def slow(idempotency_key: str) -> str:
        """Waits at the gate."""
        calls.append(("slow", idempotency_key))
        await gate.pass_through()
        return "slow done"

    return ToolRegistry([fast, slow])


def registry_with(models: dict[str, Any], tools: ToolRegistry | None = None) -> dwf.Registry:
    registry = dwf.default_registry()
    registry.install(AIExtension(models=models, tools=tools))
    return registry


async def crash(task: asyncio.Future[Any], store: Store) -> str:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    running = await store.find(status=Status.RUNNING)
    assert len(running) == 1
    return running[0].id


async def test_a_crash_after_some_tool_results_repeats_no_model_call_and_no_finished_tool() -> None:
    calls: list[tuple[str, str]] = []
    gate = Gate()
    model = ScriptedModel(
        [
            {
                "tool_calls": [
                    {"name": "fast", "arguments": {}, "id": "t1"},
                    {"name": "slow", "arguments": {}, "id": "t2"},
                ]
            },
            "all done",
        ]
    )
    registry = registry_with({"m": model}, python_tools(calls, gate))
    workflow = dwf.load_workflow(WORKFLOW, registry=registry)
    store, clock = open_store("memory://"), Clock()
    fast_journaled = asyncio.Event()

    def on_event(event: dwf.Event) -> None:
        if event.type == "agent.tool_result" and event.data["tool"] == "fast":
            fast_journaled.set()

    first = dwf.Engine(store, registry=registry, clock=clock, on_event=on_event)
    task = asyncio.ensure_future(first.run(workflow))
    await asyncio.wait_for(asyncio.gather(fast_journaled.wait(), gate.entered.wait()), 5)
    execution_id = await crash(task, store)
    assert len(model.requests) == 1

    clock.now += 31  # the dead owner's lease expires
    gate.open()
    second = dwf.Engine(store, registry=registry, clock=clock)
    results = await second.recover()

    assert [r.status for r in results] == ["completed"]
    assert results[0].output == {"answer": "all done"}
    assert len(model.requests) == 2  # the first turn came from the journal
    # `fast` had returned before the crash: it did not run again. `slow` was interrupted and
    # ran again, with the same idempotency key.
    assert calls == [
        ("fast", f"{execution_id}:ask:t1"),
        ("slow", f"{execution_id}:ask:t2"),
        ("slow", f"{execution_id}:ask:t2"),
    ]
    tool_results = [m for m in model.requests[1].messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_results] == ["fast done", "slow done"]


async def test_a_crash_while_the_model_answers_repeats_no_tool_and_no_earlier_turn() -> None:
    calls: list[tuple[str, str]] = []
    gate = Gate()
    gate.open()
    model_gate = Gate()
    turns: list[ModelRequest] = []

    async def answer(request: ModelRequest) -> Any:
        turns.append(request)
        if len(request.messages) == 1:  # the prompt alone: the first turn
            return {"tool_calls": [{"name": "fast", "arguments": {}}, {"name": "slow"}]}
        await model_gate.pass_through()
        return "finished"

    model = FunctionModel(answer)
    registry = registry_with({"m": model}, python_tools(calls, gate))
    workflow = dwf.load_workflow(WORKFLOW, registry=registry)
    store, clock = open_store("memory://"), Clock()
    first = dwf.Engine(store, registry=registry, clock=clock)
    task = asyncio.ensure_future(first.run(workflow))
    await asyncio.wait_for(model_gate.entered.wait(), 5)
    await crash(task, store)

    clock.now += 31
    model_gate.open()
    results = await dwf.Engine(store, registry=registry, clock=clock).recover()

    assert [r.output for r in results] == [{"answer": "finished"}]
    assert [name for name, _ in calls] == ["fast", "slow"]  # each tool ran once
    # The first turn was not asked again; the interrupted second one was.
    assert [len(r.messages) for r in turns] == [1, 4, 4]


async def test_the_write_per_turn_does_not_grow_with_the_conversation() -> None:
    big = "x" * 2000

    @tool
    def fetch(page: int) -> str:
        """Fetch a page."""
        return f"{page}:{big}"

    turns: list[Any] = [
        {"tool_calls": [{"name": "fetch", "arguments": {"page": n}}]} for n in range(25)
    ]
    model = ScriptedModel([*turns, "read them all"])
    registry = registry_with({"m": model}, ToolRegistry([fetch]))
    workflow = dwf.load_workflow(
        """
id: w
name: W
agents:
  - {id: a, model: m, tools: [fetch], max_turns: 30}
steps:
  - {id: read, type: agent, agent_id: a, prompt: read, output: summary}
""",
        registry=registry,
    )
    store = open_store("memory://")
    sizes: list[int] = []
    original = store.checkpoint

    async def measuring(checkpoint: Checkpoint) -> int:
        written = {"state": checkpoint.set_state, "variables": checkpoint.set_variables}
        sizes.append(len(json.dumps(written, default=str)))
        return await original(checkpoint)

    store.checkpoint = measuring  # type: ignore[method-assign]
    result = await dwf.Engine(store, registry=registry).run(workflow)

    assert result.status == "completed"
    conversation = sum(len(json.dumps(m)) for m in model.requests[-1].messages)
    assert conversation > 50_000
    assert len(sizes) > 50  # a checkpoint per model response and per tool result
    assert max(sizes) < 3_000  # each holds only what is new


APPROVAL = """
id: w
name: W
agents:
  - {id: a, model: m, tools: [lookup_order, refund_order]}
tools:
  - id: lookup_order
    description: Look up an order
    parameters: [{name: order_id, type: string}]
    service: Orders
    method: lookup
  - id: refund_order
    description: Refund an order
    parameters: [{name: order_id, type: string}, {name: amount, type: number}]
    service: Orders
    method: refund
    needs_approval: true
steps:
  - {id: ask, type: agent, agent_id: a, prompt: "Refund A-1", output: answer, next: end}
  - {id: end, type: end, result: {answer: $answer}}
"""

REFUND_TURN = {
    "tool_calls": [
        {"name": "lookup_order", "arguments": {"order_id": "A-1"}, "id": "c1"},
        {"name": "refund_order", "arguments": {"order_id": "A-1", "amount": 20}, "id": "c2"},
    ]
}


class Orders:
    def __init__(self, gate: Gate | None = None) -> None:
        self.calls: list[str] = []
        self.gate = gate

    def lookup(self, order_id: str) -> dict[str, Any]:
        self.calls.append(f"lookup {order_id}")
        return {"order_id": order_id, "total": 20}

    async def refund(self, order_id: str, amount: float) -> dict[str, Any]:
        self.calls.append(f"refund {order_id}")
        if self.gate is not None:
            await self.gate.pass_through()
        return {"refunded": amount}


async def test_a_tool_that_needs_approval_halts_and_runs_once_approved() -> None:
    model = ScriptedModel([REFUND_TURN, "Refunded 20."])
    orders = Orders()
    registry = registry_with({"m": model})
    engine = dwf.Engine("memory://", registry=registry, services={"Orders": orders})
    result = await engine.run(dwf.load_workflow(APPROVAL, registry=registry))

    assert result.status == "halted"
    assert result.halt is not None
    assert result.halt["data"] == {
        "type": "tool_approval",
        "tool": "refund_order",
        "arguments": {"order_id": "A-1", "amount": 20},
        "tool_call_id": "c2",
        "agent": "a",
        "step": "ask",
    }
    assert result.halt["prompt"] == (
        'Agent \'a\' wants to call tool \'refund_order\' with {"amount": 20, "order_id": "A-1"}. '
        "Approve?"
    )
    assert orders.calls == ["lookup A-1"]  # the call without approval already ran

    resumed = await engine.resume(result.execution_id, approved=True, by="ops")
    assert resumed.status == "completed"
    assert resumed.output == {"answer": "Refunded 20."}
    assert orders.calls == ["lookup A-1", "refund A-1"]
    assert len(model.requests) == 2
    results = [m for m in model.requests[1].messages if m["role"] == "tool"]
    assert [json.loads(m["content"]) for m in results] == [
        {"order_id": "A-1", "total": 20},
        {"refunded": 20},
    ]


async def test_a_rejected_tool_call_returns_a_refusal_to_the_model_and_the_loop_goes_on() -> None:
    model = ScriptedModel([REFUND_TURN, "I could not refund it."])
    orders = Orders()
    registry = registry_with({"m": model})
    engine = dwf.Engine("memory://", registry=registry, services={"Orders": orders})
    halted = await engine.run(dwf.load_workflow(APPROVAL, registry=registry))
    result = await engine.resume(halted.execution_id, approved=False, response="too much")

    assert result.output == {"answer": "I could not refund it."}
    assert orders.calls == ["lookup A-1"]
    refusal = model.requests[1].messages[-1]
    assert refusal == {
        "role": "tool",
        "tool_call_id": "c2",
        "name": "refund_order",
        "content": (
            "The call of tool 'refund_order' was not approved by a person and did not run. "
            "They said: too much"
        ),
        "is_error": True,
    }


async def test_an_approved_call_interrupted_by_a_crash_runs_after_recovery_without_a_new_halt() -> (
    None
):
    gate = Gate()
    model = ScriptedModel([REFUND_TURN, "Refunded."])
    orders = Orders(gate)
    registry = registry_with({"m": model})
    store, clock = open_store("memory://"), Clock()
    first = dwf.Engine(store, registry=registry, services={"Orders": orders}, clock=clock)
    halted = await first.run(dwf.load_workflow(APPROVAL, registry=registry))
    task = asyncio.ensure_future(first.resume(halted.execution_id, approved=True))
    await asyncio.wait_for(gate.entered.wait(), 5)
    await crash(task, store)

    clock.now += 31
    gate.open()
    second = dwf.Engine(store, registry=registry, services={"Orders": orders}, clock=clock)
    results = await second.recover()
    assert [r.status for r in results] == ["completed"]  # the decision was journaled
    assert orders.calls == ["lookup A-1", "refund A-1", "refund A-1"]
    assert len(model.requests) == 2


async def test_two_calls_that_need_approval_halt_one_after_the_other() -> None:
    @tool(needs_approval=True)
    def delete_file(path: str) -> str:
        """Delete a file."""
        return f"deleted {path}"

    model = ScriptedModel(
        [
            {
                "tool_calls": [
                    {"name": "delete_file", "arguments": {"path": "a.txt"}},
                    {"name": "delete_file", "arguments": {"path": "b.txt"}},
                ]
            },
            "Deleted a.txt; b.txt was kept.",
        ]
    )
    registry = registry_with({"m": model}, ToolRegistry([delete_file]))
    workflow = dwf.load_workflow(
        """
id: w
name: W
agents:
  - {id: a, model: m, tools: [delete_file]}
steps:
  - {id: clean, type: agent, agent_id: a, prompt: clean up, output: answer}
""",
        registry=registry,
    )
    engine = dwf.Engine("memory://", registry=registry)
    first = await engine.run(workflow)
    assert first.halt is not None and first.halt["data"]["arguments"] == {"path": "a.txt"}
    second = await engine.resume(first.execution_id, approved=True)
    assert second.halt is not None and second.halt["data"]["arguments"] == {"path": "b.txt"}
    done = await engine.resume(first.execution_id, approved=False)
    assert done.status == "completed"
    contents = [m["content"] for m in model.requests[1].messages if m["role"] == "tool"]
    assert contents[0] == "deleted a.txt"
    assert contents[1].startswith("The call of tool 'delete_file' was not approved")


async def test_an_approval_inside_a_loop_iteration_resumes_in_that_iteration() -> None:
    refunds: list[tuple[str, str]] = []

    @tool(needs_approval=True)
    def refund(order_id: str, idempotency_key: str) -> str:
        """Refund an order."""
        refunds.append((order_id, idempotency_key))
        return f"refunded {order_id}"

    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "refund", "arguments": {"order_id": "A"}, "id": "r1"}]},
            "A done",
            {"tool_calls": [{"name": "refund", "arguments": {"order_id": "B"}, "id": "r2"}]},
            "B done",
        ]
    )
    registry = registry_with({"m": model}, ToolRegistry([refund]))
    workflow = dwf.load_workflow(
        """
id: w
name: W
agents:
  - {id: a, model: m, tools: [refund]}
steps:
  - id: each
    type: loop
    over: [A, B]
    do:
      - {id: ask, type: agent, agent_id: a, prompt: "Refund $item", output: answer}
    output: answers
    next: end
  - {id: end, type: end, result: {answers: $answers}}
""",
        registry=registry,
    )
    engine = dwf.Engine("memory://", registry=registry)
    first = await engine.run(workflow)
    assert first.halt is not None and first.halt["data"]["arguments"] == {"order_id": "A"}
    second = await engine.resume(first.execution_id, approved=True)
    assert second.halt is not None and second.halt["data"]["arguments"] == {"order_id": "B"}
    done = await engine.resume(first.execution_id, approved=True)

    # A loop collects each iteration's last step output: for an agent step, its record.
    assert [record["output"] for record in done.output["answers"]] == ["A done", "B done"]
    assert refunds == [
        ("A", f"{first.execution_id}:each[0]/ask:r1"),
        ("B", f"{first.execution_id}:each[1]/ask:r2"),
    ]
    assert len(model.requests) == 4
