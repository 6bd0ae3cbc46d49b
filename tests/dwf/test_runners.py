"""The Sync and Stream runners, events, and the ``*_sync`` wrappers."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from typing import Any

import pytest

import dwf
from dwf.runners import HaltAnswer, StreamRunner, SyncRunner, sse_stream
from dwf.runners.stream import EVENT_TYPES


def workflow(text: str) -> dwf.WorkflowDefinition:
    """Parse a workflow; ``id`` and ``name`` are added when the text has none."""
    text = textwrap.dedent(text)
    if not text.lstrip().startswith("id:"):
        text = "id: test\nname: Test\n" + text
    return dwf.parse_workflow(text)


ECHO = workflow("""
    steps:
      - id: start
        type: start
        next: finish
      - id: finish
        type: end
        result: $input
    """)

WAITING = workflow("""
    steps:
      - id: wait
        type: halt
        reason: Waiting
        next: finish
      - id: finish
        type: end
        result: {response: $response}
    """)

APPROVAL = workflow("""
    steps:
      - id: approve
        type: approval
        prompt: Ship it?
        on_reject: rejected
        next: shipped
      - id: shipped
        type: end
        result: shipped
      - id: rejected
        type: end
        result: rejected
    """)

MIXED = workflow("""
    steps:
      - id: ask
        type: halt
        reason: Name?
        next: approve
      - id: approve
        type: approval
        prompt: "Greet $response?"
        next: finish
      - id: finish
        type: end
        result: "Hello, $response"
    """)


def memory_engine(**kwargs: Any) -> dwf.Engine:
    return dwf.Engine("memory://", **kwargs)


# ---------------------------------------------------------------------------------- SyncRunner


async def test_sync_runner_runs_to_completion() -> None:
    runner = SyncRunner(memory_engine(), ECHO)
    result = await runner.run({"name": "test"})
    assert (result.status, result.output) == ("completed", {"name": "test"})


async def test_sync_runner_uses_a_given_execution_id() -> None:
    engine = memory_engine()
    result = await SyncRunner(engine, ECHO).run({}, execution_id="order-1")
    assert result.execution_id == "order-1"
    assert (await engine.get("order-1")).status == dwf.Status.COMPLETED


async def test_sync_runner_halts_and_resumes_with_a_response() -> None:
    runner = SyncRunner(memory_engine(), WAITING)
    result = await runner.run()
    assert result.status == "halted"
    assert result.halt["data"]["reason"] == "Waiting"
    result = await runner.resume(result.execution_id, response="user input")
    assert result.output == {"response": "user input"}


async def test_run_until_complete_without_a_callback_returns_the_first_halt() -> None:
    result = await SyncRunner(memory_engine(), WAITING).run_until_complete()
    assert result.status == "halted"


async def test_run_until_complete_answers_plain_halts_with_the_callback_value() -> None:
    seen: list[dwf.RunResult] = []

    def answer(halted: dwf.RunResult) -> str:
        seen.append(halted)
        return "auto response"

    result = await SyncRunner(memory_engine(), WAITING).run_until_complete({}, answer)
    assert (result.status, result.output) == ("completed", {"response": "auto response"})
    assert [h.halt["data"]["reason"] for h in seen] == ["Waiting"]


async def test_run_until_complete_answers_approvals_with_a_halt_answer() -> None:
    runner = SyncRunner(memory_engine(), APPROVAL)
    # the original passed the answer only as a response and looped forever (defect 44)
    approved = await runner.run_until_complete({}, lambda _: HaltAnswer(approved=True))
    assert approved.output == "shipped"
    rejected = await runner.run_until_complete({}, lambda _: HaltAnswer(approved=False))
    assert rejected.output == "rejected"


async def test_run_until_complete_takes_a_bool_as_an_approval_decision() -> None:
    result = await SyncRunner(memory_engine(), APPROVAL).run_until_complete({}, lambda _: True)
    assert result.output == "shipped"


async def test_run_until_complete_answers_each_kind_of_halt_in_turn() -> None:
    def answer(halted: dwf.RunResult) -> Any:
        if halted.halt["data"].get("type") == "approval":
            return HaltAnswer(approved=True)
        return "Ann"

    result = await SyncRunner(memory_engine(), MIXED).run_until_complete({}, answer)
    assert result.output == "Hello, Ann"


async def test_run_until_complete_accepts_an_async_callback() -> None:
    async def answer(halted: dwf.RunResult) -> HaltAnswer:
        return HaltAnswer(response="from async")

    result = await SyncRunner(memory_engine(), WAITING).run_until_complete({}, answer)
    assert result.output == {"response": "from async"}


async def test_run_until_complete_gives_up_when_the_answers_never_finish() -> None:
    runner = SyncRunner(memory_engine(), APPROVAL)
    with pytest.raises(dwf.ExecutionError, match="halted more than 3 times"):
        await runner.run_until_complete({}, lambda _: "not a decision", max_halts=3)


def test_sync_runner_sync_methods_work_outside_an_event_loop() -> None:
    runner = SyncRunner(memory_engine(), WAITING)
    result = runner.run_sync({})
    assert result.status == "halted"
    result = runner.resume_sync(result.execution_id, response="sync")
    assert result.output == {"response": "sync"}
    result = SyncRunner(memory_engine(), APPROVAL).run_until_complete_sync(
        {}, lambda _: HaltAnswer(approved=True)
    )
    assert result.output == "shipped"


def test_engine_sync_wrappers_work_outside_an_event_loop() -> None:
    engine = memory_engine()
    result = engine.run_sync(WAITING, {})
    result = engine.resume_sync(result.execution_id, response="ok")
    assert result.output == {"response": "ok"}
    assert engine.recover_sync() == []


async def test_engine_run_sync_refuses_to_run_inside_an_event_loop() -> None:
    engine = memory_engine()
    with pytest.raises(dwf.ConfigurationError) as info:
        engine.run_sync(ECHO, {})
    assert "cannot be called from a running event loop" in str(info.value)
    assert "await engine.run(...)" in str(info.value)
    with pytest.raises(dwf.ConfigurationError, match=r"await engine\.resume\(\.\.\.\)"):
        engine.resume_sync("anything")


async def test_runner_sync_wrappers_refuse_to_run_inside_an_event_loop() -> None:
    runner = SyncRunner(memory_engine(), ECHO)
    with pytest.raises(dwf.ConfigurationError, match=r"run_sync\(\) cannot be called"):
        runner.run_sync({})
    with pytest.raises(dwf.ConfigurationError, match="run_until_complete"):
        runner.run_until_complete_sync({})


# -------------------------------------------------------------------------------- StreamRunner


def kinds(events: list[dwf.Event]) -> list[tuple[str, str | None]]:
    return [(e.type, e.step_path) for e in events]


async def test_stream_runner_reports_the_lifecycle_of_a_run() -> None:
    events: list[dwf.Event] = []
    runner = StreamRunner(memory_engine(), ECHO).subscribe(events.append)
    result = await runner.run({"done": True})
    assert result.output == {"done": True}
    assert kinds(events) == [
        ("workflow.started", None),
        ("step.started", "start"),
        ("step.completed", "start"),
        ("step.started", "finish"),
        ("step.completed", "finish"),
        ("workflow.completed", None),
    ]
    assert events[0].data == {"input": {"done": True}}
    assert events[-1].data == {"output": {"done": True}}
    assert {e.execution_id for e in events} == {result.execution_id}
    assert {e.workflow_id for e in events} == {"test"}
    assert events[1].step_type == "start"


async def test_subscribe_returns_the_runner_for_chaining() -> None:
    runner = StreamRunner(memory_engine(), ECHO)
    assert runner.subscribe(lambda e: None) is runner


async def test_stream_runner_reports_halts_and_resumes() -> None:
    events: list[dwf.Event] = []
    runner = StreamRunner(memory_engine(), WAITING).subscribe(events.append)
    result = await runner.run()
    assert kinds(events)[-2:] == [("step.halted", "wait"), ("workflow.halted", None)]
    assert events[-1].data["prompt"] == "Waiting"
    assert events[-1].data["halt"]["reason"] == "Waiting"
    events.clear()
    await runner.resume(result.execution_id, response="yes")
    assert kinds(events) == [
        ("workflow.resumed", None),
        ("step.started", "finish"),
        ("step.completed", "finish"),
        ("workflow.completed", None),
    ]
    assert events[0].data == {"approved": None, "response": "yes"}


async def test_stream_runner_reports_failures() -> None:
    events: list[dwf.Event] = []
    wf = workflow("""
        steps:
          - id: boom
            type: call
            service: Nope
            method: x
        """)
    runner = StreamRunner(memory_engine(), wf).subscribe(events.append)
    result = await runner.run()
    assert kinds(events) == [
        ("workflow.started", None),
        ("step.started", "boom"),
        ("step.failed", "boom"),
        ("workflow.failed", None),
    ]
    assert events[2].data["error"]["step"] == "boom"
    assert events[3].data["error"] == result.error


async def test_a_handled_failure_is_reported_as_step_failed_not_completed() -> None:
    events: list[dwf.Event] = []
    wf = workflow("""
        steps:
          - id: boom
            type: call
            service: Nope
            method: x
            on_error: finish
          - id: finish
            type: end
        """)
    await StreamRunner(memory_engine(), wf).subscribe(events.append).run()
    assert kinds(events) == [
        ("workflow.started", None),
        ("step.started", "boom"),
        ("step.failed", "boom"),
        ("step.started", "finish"),
        ("step.completed", "finish"),
        ("workflow.completed", None),
    ]


async def test_stream_runner_reports_nested_steps_with_their_path() -> None:
    events: list[dwf.Event] = []
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1, 2]
            next: par
            do:
              - id: inner
                type: assign
                set: {x: $item}
          - id: par
            type: parallel
            branches:
              - id: branch
                type: assign
                set: {y: 1}
        """)
    await StreamRunner(memory_engine(), wf).subscribe(events.append, ["step."]).run()
    assert kinds(events) == [
        ("step.started", "each"),
        ("step.started", "each[0]/inner"),
        ("step.completed", "each[0]/inner"),
        ("step.started", "each[1]/inner"),
        ("step.completed", "each[1]/inner"),
        ("step.completed", "each"),
        ("step.started", "par"),
        ("step.started", "par/branch"),
        ("step.completed", "par/branch"),
        ("step.completed", "par"),
    ]
    assert events[1].step_id == "inner"
    assert events[1].step_type == "assign"


async def test_subscribers_can_filter_by_type_or_prefix() -> None:
    completed: list[dwf.Event] = []
    workflow_events: list[dwf.Event] = []
    runner = StreamRunner(memory_engine(), ECHO)
    runner.subscribe(completed.append, ["workflow.completed"])
    runner.subscribe(workflow_events.append, ["workflow."])
    await runner.run({})
    assert [e.type for e in completed] == ["workflow.completed"]
    assert [e.type for e in workflow_events] == ["workflow.started", "workflow.completed"]


async def test_a_raising_subscriber_does_not_break_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[dwf.Event] = []

    def broken(event: dwf.Event) -> None:
        raise RuntimeError("subscriber bug")

    runner = StreamRunner(memory_engine(), ECHO).subscribe(broken).subscribe(events.append)
    with caplog.at_level(logging.ERROR, logger="dwf"):
        result = await runner.run({"ok": 1})
    assert result.status == "completed"
    assert "subscriber bug" in caplog.text
    assert kinds(events)[-1] == ("workflow.completed", None)


async def test_a_raising_engine_callback_does_not_break_the_run() -> None:
    def broken(event: dwf.Event) -> None:
        raise RuntimeError("callback bug")

    engine = memory_engine(on_event=broken)
    assert (await engine.run(ECHO, {"a": 1})).output == {"a": 1}


async def test_events_iterates_over_the_events_of_a_run() -> None:
    runner = StreamRunner(memory_engine(), ECHO)
    types = [event.type async for event in runner.events({"x": 1})]
    assert types[0] == "workflow.started"
    assert types[-1] == "workflow.completed"


async def test_event_to_sse_is_one_server_sent_events_message() -> None:
    events: list[dwf.Event] = []
    await StreamRunner(memory_engine(), ECHO).subscribe(events.append).run({"name": "é\nx"})
    sse = events[0].to_sse()
    assert sse.startswith("event: workflow.started\ndata: {")
    assert sse.endswith("}\n\n")
    assert sse.count("\n") == 3
    payload = json.loads(sse.split("data: ", 1)[1])
    assert payload["type"] == "workflow.started"
    assert payload["data"] == {"input": {"name": "é\nx"}}
    assert payload == json.loads(events[0].to_json()) == events[0].to_dict()
    step_payload = json.loads(events[1].to_sse().split("data: ", 1)[1])
    assert step_payload["step_path"] == "start"
    assert step_payload["step_type"] == "start"


async def test_sse_stream_encodes_every_event() -> None:
    runner = StreamRunner(memory_engine(), ECHO)
    messages = [m async for m in sse_stream(runner.events({}))]
    assert messages[0].startswith("event: workflow.started\n")
    assert messages[-1].startswith("event: workflow.completed\n")
    assert all(m.endswith("\n\n") for m in messages)


async def test_a_stream_runner_reports_only_the_executions_it_runs() -> None:
    engine = memory_engine()
    echo_events: list[dwf.Event] = []
    waiting_events: list[dwf.Event] = []
    echo = StreamRunner(engine, ECHO).subscribe(echo_events.append)
    waiting = StreamRunner(engine, WAITING).subscribe(waiting_events.append)
    echoed = await echo.run({})
    halted = await waiting.run({})
    await engine.run(ECHO, {})  # not through a runner: nobody's stream
    resumed = await waiting.resume(halted.execution_id, response="x")
    assert {e.execution_id for e in echo_events} == {echoed.execution_id}
    assert {e.execution_id for e in waiting_events} == {resumed.execution_id}


async def test_a_stream_runner_reports_the_events_of_child_workflows() -> None:
    child = workflow("""
        id: child
        name: Child
        steps:
          - id: wait
            type: halt
            reason: child waits
            next: finish
          - id: finish
            type: end
            result: $response
        """)
    parent = workflow("""
        id: parent
        name: Parent
        steps:
          - id: sub
            type: workflow
            workflow_id: child
        """)
    events: list[dwf.Event] = []
    runner = StreamRunner(memory_engine(workflows=[child]), parent).subscribe(events.append)
    result = await runner.run({})
    await runner.resume(result.execution_id, response="ok")
    child_events = [(e.type, e.step_path) for e in events if e.workflow_id == "child"]
    assert child_events == [
        ("workflow.started", None),
        ("step.started", "wait"),
        ("step.halted", "wait"),
        ("workflow.halted", None),
        ("workflow.resumed", None),
        ("step.started", "finish"),
        ("step.completed", "finish"),
        ("workflow.completed", None),
    ]
    started = next(e for e in events if e.workflow_id == "child")
    assert started.data["parent_id"] == result.execution_id


async def test_concurrent_event_streams_of_one_runner_do_not_mix() -> None:
    runner = StreamRunner(memory_engine(), ECHO)

    async def collect(tag: str) -> list[dwf.Event]:
        return [event async for event in runner.events({"tag": tag})]

    first, second = await asyncio.gather(collect("a"), collect("b"))
    for events, tag in ((first, "a"), (second, "b")):
        assert len({e.execution_id for e in events}) == 1
        assert events[0].data == {"input": {"tag": tag}}
        assert [e.type for e in events].count("workflow.completed") == 1


async def test_every_event_type_emitted_is_declared() -> None:
    events: list[dwf.Event] = []
    runner = StreamRunner(memory_engine(), WAITING).subscribe(events.append)
    result = await runner.run()
    await runner.resume(result.execution_id, response="x")
    failing = StreamRunner(memory_engine(), APPROVAL).subscribe(events.append)
    result = await failing.run()
    await failing.resume(result.execution_id, approved=False)
    seen = {e.type for e in events}
    assert "workflow.resumed" in seen  # missing from the original's list (defect 47)
    assert seen <= set(EVENT_TYPES)
