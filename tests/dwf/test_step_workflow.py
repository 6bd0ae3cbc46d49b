"""The ``workflow`` step: child executions linked to their parent, halts and failures."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import dwf


def workflow(text: str) -> dwf.WorkflowDefinition:
    """Parse a workflow; ``id`` and ``name`` are added when the text has none."""
    text = textwrap.dedent(text)
    if not text.lstrip().startswith("id:"):
        text = "id: test\nname: Test\n" + text
    return dwf.parse_workflow(text)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def record(self, value: Any) -> Any:
        self.calls.append(value)
        return value

    def fail(self, message: str) -> None:
        raise RuntimeError(message)


CHILD = workflow("""
    id: child
    name: Child
    inputs:
      name: {type: string}
    steps:
      - id: greet
        type: call
        service: Rec
        method: record
        input: "Hello, $input.name"
        output: greeting
        next: finish
      - id: finish
        type: end
        result: {greeting: $greeting}
    """)

ASKING_CHILD = workflow("""
    id: asking
    name: Asking child
    steps:
      - id: before
        type: call
        service: Rec
        method: record
        input: child before
        next: ask
      - id: ask
        type: halt
        reason: "Child needs input"
        data: {from: child}
        next: after
      - id: after
        type: call
        service: Rec
        method: record
        input: "child got $response"
        output: got
        next: finish
      - id: finish
        type: end
        result: $got
    """)

APPROVING_CHILD = workflow("""
    id: approving
    name: Approving child
    steps:
      - id: approve
        type: approval
        prompt: Child approval?
        on_reject: no
        next: yes
      - id: yes
        type: end
        result: approved
      - id: no
        type: end
        result: rejected
    """)

FAILING_CHILD = workflow("""
    id: failing
    name: Failing child
    steps:
      - id: explode
        type: call
        service: Rec
        method: fail
        input: child exploded
    """)


def parent(child_id: str, input: str = "{}", extra: str = "") -> dwf.WorkflowDefinition:
    return workflow(f"""
        id: parent
        name: Parent
        steps:
          - id: sub
            type: workflow
            workflow_id: {child_id}
            input: {input}
            output: child_result
            next: finish
            {extra}
          - id: finish
            type: end
            result: $child_result
          - id: handler
            type: end
            result: {{handled: $_last_error}}
        """)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(recorder: Recorder) -> dwf.Engine:
    return dwf.Engine(
        "memory://",
        services={"Rec": recorder},
        workflows=[CHILD, ASKING_CHILD, APPROVING_CHILD, FAILING_CHILD],
    )


async def children_of(engine: dwf.Engine, parent_id: str) -> list[dwf.ExecutionRecord]:
    return [await engine.get(s.id) for s in await engine.store.find(parent_id=parent_id)]


# ------------------------------------------------------------------------------- completion


async def test_a_child_workflow_output_becomes_the_step_output(engine: dwf.Engine) -> None:
    wf = workflow("""
        id: parent
        name: Parent
        steps:
          - id: set
            type: assign
            set: {who: Ann}
            next: sub
          - id: sub
            type: workflow
            workflow_id: child
            input: {name: $who}
            output: child_result
            next: finish
          - id: finish
            type: end
            result: $child_result
        """)
    result = await engine.run(wf)
    assert (result.status, result.output) == ("completed", {"greeting": "Hello, Ann"})


async def test_the_child_execution_is_linked_to_its_parent(engine: dwf.Engine) -> None:
    result = await engine.run(parent("child", "{name: Bo}"))
    [child] = await children_of(engine, result.execution_id)
    assert child.workflow_id == "child"
    assert child.parent_id == result.execution_id
    assert child.parent_step == "sub"
    assert child.status == dwf.Status.COMPLETED
    assert child.input == {"name": "Bo"}
    assert child.output == {"greeting": "Hello, Bo"}
    child_steps = [e.step_path for e in await engine.entries(child.id)]
    assert child_steps == ["greet", "finish"]
    # the parent's timeline holds its own steps, not the child's
    parent_steps = [e.step_path for e in await engine.entries(result.execution_id)]
    assert parent_steps == ["sub", "finish"]


async def test_a_child_in_a_loop_is_a_separate_execution_per_iteration(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        id: parent
        name: Parent
        steps:
          - id: each
            type: loop
            over: [A, B]
            output: greetings
            next: finish
            do:
              - id: sub
                type: workflow
                workflow_id: child
                input: {name: $item}
          - id: finish
            type: end
            result: $greetings
        """)
    result = await engine.run(wf)
    assert result.output == [{"greeting": "Hello, A"}, {"greeting": "Hello, B"}]
    children = await children_of(engine, result.execution_id)
    assert sorted(c.parent_step for c in children) == ["each[0]/sub", "each[1]/sub"]


async def test_the_child_input_is_validated_against_its_inputs(engine: dwf.Engine) -> None:
    result = await engine.run(parent("child", "{name: 5}"))
    assert result.status == "failed"
    assert result.error["step"] == "sub"
    assert "input 'name' must be string" in result.error["message"]


async def test_a_child_input_that_is_not_a_mapping_fails_the_step(engine: dwf.Engine) -> None:
    result = await engine.run(parent("child", "[1, 2]"))
    assert result.status == "failed"
    assert "must be a mapping, got list" in result.error["message"]


# -------------------------------------------------------------------------------------- halts


async def test_a_child_halt_halts_the_parent_with_the_child_data(engine: dwf.Engine) -> None:
    result = await engine.run(parent("asking"))
    assert result.status == "halted"
    assert result.halt["prompt"] == "Child needs input"
    assert result.halt["data"]["from"] == "child"
    assert result.halt["path"] == "sub"
    [child] = await children_of(engine, result.execution_id)
    assert child.status == dwf.Status.HALTED


async def test_resuming_the_parent_resumes_the_same_child_execution(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    result = await engine.run(parent("asking"))
    [child_before] = await children_of(engine, result.execution_id)

    result = await engine.resume(result.execution_id, response="42")
    assert (result.status, result.output) == ("completed", "child got 42")

    # still one child: it was resumed where it stopped, not started again (defect 40)
    [child_after] = await children_of(engine, result.execution_id)
    assert child_after.id == child_before.id
    assert child_after.status == dwf.Status.COMPLETED
    assert recorder.calls == ["child before", "child got 42"]
    actions = [(e.step_path, e.action) for e in await engine.entries(child_after.id)]
    assert actions == [
        ("before", "completed"),
        ("ask", "halted"),
        ("ask", "resumed"),
        ("after", "completed"),
        ("finish", "completed"),
    ]


async def test_an_approval_in_a_child_is_decided_through_the_parent(engine: dwf.Engine) -> None:
    approved = await engine.run(parent("approving"))
    assert approved.halt["data"]["type"] == "approval"
    approved = await engine.resume(approved.execution_id, approved=True)
    assert approved.output == "approved"

    rejected = await engine.run(parent("approving"))
    rejected = await engine.resume(rejected.execution_id, approved=False)
    assert rejected.output == "rejected"


async def test_a_child_cannot_be_resumed_directly(engine: dwf.Engine) -> None:
    result = await engine.run(parent("asking"))
    [child] = await children_of(engine, result.execution_id)
    with pytest.raises(dwf.InvalidTransition, match=f"resume {result.execution_id} instead"):
        await engine.resume(child.id, response="x")


async def test_a_grandchild_halt_resumes_through_both_levels(engine: dwf.Engine) -> None:
    middle = workflow("""
        id: middle
        name: Middle
        steps:
          - id: inner
            type: workflow
            workflow_id: asking
            output: inner_result
            next: finish
          - id: finish
            type: end
            result: {middle: $inner_result}
        """)
    engine.workflows["middle"] = middle
    result = await engine.run(parent("middle"))
    assert result.halt["prompt"] == "Child needs input"
    result = await engine.resume(result.execution_id, response="deep")
    assert result.output == {"middle": "child got deep"}


async def test_a_child_halt_resumes_in_a_new_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    first_rec, second_rec = Recorder(), Recorder()
    first = dwf.Engine(url, services={"Rec": first_rec}, workflows=[ASKING_CHILD])
    try:
        result = await first.run(parent("asking"))
    finally:
        await first.close()
    # the new engine does not even know the child workflow: the parent's pinned definition does
    second = dwf.Engine(url, services={"Rec": second_rec})
    try:
        result = await second.resume(result.execution_id, response="later")
    finally:
        await second.close()
    assert result.output == "child got later"
    assert first_rec.calls == ["child before"]
    assert second_rec.calls == ["child got later"]


# ----------------------------------------------------------------------------------- failures


async def test_a_child_failure_fails_the_parent_step(engine: dwf.Engine) -> None:
    result = await engine.run(parent("failing"))
    assert result.status == "failed"
    assert result.error["step"] == "sub"
    [child] = await children_of(engine, result.execution_id)
    assert child.status == dwf.Status.FAILED
    assert child.error["message"] == "child exploded"
    assert child.id in result.error["message"]
    assert "child exploded" in result.error["message"]
    assert result.error["child_execution_id"] == child.id


async def test_a_child_failure_can_be_handled_by_the_parent_on_error(engine: dwf.Engine) -> None:
    result = await engine.run(parent("failing", extra="on_error: handler"))
    assert result.status == "completed"
    handled = result.output["handled"]
    assert handled["step"] == "sub"
    assert "child exploded" in handled["message"]


async def test_an_unknown_workflow_id_fails_the_step(engine: dwf.Engine) -> None:
    result = await engine.run(parent("chlid", extra="on_error: handler"))
    assert "sub-workflow 'chlid' is not known" in result.output["handled"]["message"]
    result = await engine.run(parent("chlid"))
    assert result.status == "failed"
    assert result.error["step"] == "sub"
    assert await children_of(engine, result.execution_id) == []


async def test_an_unknown_workflow_id_fails_listing_the_known_ones(engine: dwf.Engine) -> None:
    result = await engine.run(parent("chlid"))
    message = result.error["message"]
    assert "did you mean 'child'?" in message
    assert "known workflows: approving, asking, child, failing" in message


SLOW_CHILD = workflow("""
    id: slow
    name: Slow
    steps:
      - id: one
        type: call
        service: Slow
        method: work
        next: two
      - id: two
        type: call
        service: Slow
        method: work
    """)


async def run_slow_child() -> tuple[dwf.Engine, dwf.RunResult, dwf.ExecutionRecord]:
    now = [1000.0]

    class Slow:
        def work(self) -> str:
            now[0] += 60  # the injected clock moves while the child works
            return "done"

    engine = dwf.Engine(
        "memory://", services={"Slow": Slow()}, workflows=[SLOW_CHILD], clock=lambda: now[0]
    )
    result = await engine.run(parent("slow", extra="timeout: 30"))
    [child] = await children_of(engine, result.execution_id)
    return engine, result, child


async def test_the_child_timeout_fails_a_child_that_runs_too_long() -> None:
    engine, result, child = await run_slow_child()
    assert result.status == "failed"
    assert result.error["step"] == "sub"
    assert child.error["type"] == "WorkflowTimeout"
    assert "ran past its timeout" in result.error["message"]
    # the child stopped at the first step boundary past its deadline
    assert [e.step_id for e in await engine.entries(child.id)] == ["one"]


async def test_the_child_timeout_message_names_the_step_timeout() -> None:
    _, result, _ = await run_slow_child()
    assert "ran past its timeout (30s)" in result.error["message"]


async def test_an_approval_timeout_inside_a_child_fires_through_the_parent() -> None:
    now = [1000.0]
    timed_child = workflow("""
        id: timed
        name: Timed
        steps:
          - id: approve
            type: approval
            prompt: OK?
            timeout: 60
            on_timeout: late
            next: yes
          - id: yes
            type: end
            result: approved
          - id: late
            type: end
            result: timed out
        """)
    engine = dwf.Engine("memory://", workflows=[timed_child], clock=lambda: now[0])
    result = await engine.run(parent("timed"))
    assert result.halt["expires_at"] == 1060.0
    assert (await engine.get(result.execution_id)).wake_at == 1060.0
    now[0] = 1061.0
    [recovered] = await engine.recover()
    assert (recovered.execution_id, recovered.output) == (result.execution_id, "timed out")
    [child] = await children_of(engine, result.execution_id)
    assert child.status == dwf.Status.COMPLETED
