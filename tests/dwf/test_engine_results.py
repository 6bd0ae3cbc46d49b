"""What run and resume return: failures as results, on_error, timeouts, transitions, input."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import dwf

T0 = 1_700_000_000.0


class Clock:
    """A settable clock for Engine(clock=...)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def workflow(text: str) -> dwf.WorkflowDefinition:
    """Parse a workflow; ``id`` and ``name`` are added when the text has none."""
    text = textwrap.dedent(text)
    if not text.lstrip().startswith("id:"):
        text = "id: test\nname: Test\n" + text
    return dwf.parse_workflow(text)


class Svc:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock

    def fail(self, message: str = "boom") -> None:
        raise ValueError(message)

    def value(self, value: Any) -> Any:
        return value

    def take_time(self, seconds: float) -> str:
        assert self.clock is not None
        self.clock.advance(seconds)
        return "took"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> dwf.Engine:
    return dwf.Engine("memory://", services={"Svc": Svc(clock)}, clock=clock)


FAILING = """
    steps:
      - id: set
        type: assign
        set: {before: 1}
        next: explode
      - id: explode
        type: call
        service: Svc
        method: fail
        input: kaboom
        output: never
        next: finish
      - id: finish
        type: end
    """


# ---------------------------------------------------------------------------- failures


async def test_a_failing_step_returns_a_failed_result_instead_of_raising(
    engine: dwf.Engine,
) -> None:
    result = await engine.run(workflow(FAILING))
    assert result.status == "failed"
    assert result.failed and not result.completed and not result.halted
    assert result.output is None
    assert result.error == {
        "type": "ValueError",
        "message": "kaboom",
        "step": "explode",
        "path": "explode",
    }


async def test_a_failed_execution_is_stored_with_its_error_and_timeline(
    engine: dwf.Engine,
) -> None:
    result = await engine.run(workflow(FAILING))
    record = await engine.get(result.execution_id)
    assert record.status == dwf.Status.FAILED
    assert record.error == result.error
    assert record.variables == {"before": 1}
    entries = await engine.entries(result.execution_id)
    assert [(e.step_id, e.action) for e in entries] == [
        ("set", "completed"),
        ("explode", "failed"),
    ]
    assert entries[-1].error == result.error


async def test_a_nested_failure_names_the_inner_step_and_its_path(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1]
            do:
              - id: explode
                type: call
                service: Svc
                method: fail
        """)
    result = await engine.run(wf)
    assert result.error["step"] == "explode"
    assert result.error["path"] == "each[0]/explode"


async def test_a_failed_run_survives_in_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    engine = dwf.Engine(url, services={"Svc": Svc()})
    try:
        result = await engine.run(workflow(FAILING))
    finally:
        await engine.close()
    reopened = dwf.Engine(url)
    try:
        record = await reopened.get(result.execution_id)
    finally:
        await reopened.close()
    assert record.status == dwf.Status.FAILED
    assert record.error["message"] == "kaboom"


# ---------------------------------------------------------------------------- on_error


HANDLED = """
    steps:
      - id: set
        type: assign
        set: {before: 1}
        next: explode
      - id: explode
        type: call
        service: Svc
        method: fail
        input: kaboom
        output: never
        on_error: handler
        next: finish
      - id: handler
        type: assign
        set: {seen: $_last_error}
        next: after
      - id: after
        type: assign
        set: {still: $_last_error}
        next: finish
      - id: finish
        type: end
    """


async def test_on_error_receives_the_last_error(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(HANDLED))
    assert result.status == "completed"
    assert result.output["seen"] == {"step": "explode", "type": "ValueError", "message": "kaboom"}


async def test_the_last_error_is_gone_after_the_handler(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(HANDLED))
    assert result.output["still"] is None
    assert "_last_error" not in (await engine.get(result.execution_id)).variables


async def test_a_handled_failure_keeps_earlier_variables_and_discards_its_own(
    engine: dwf.Engine,
) -> None:
    result = await engine.run(workflow(HANDLED))
    assert result.output["before"] == 1
    assert "never" not in result.output


async def test_a_handled_failure_is_in_the_timeline(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(HANDLED))
    entries = await engine.entries(result.execution_id)
    assert [(e.step_id, e.action) for e in entries] == [
        ("set", "completed"),
        ("explode", "failed"),
        ("handler", "completed"),
        ("after", "completed"),
        ("finish", "completed"),
    ]


async def test_a_failing_handler_can_have_its_own_handler(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: first
            type: call
            service: Svc
            method: fail
            input: first failure
            on_error: second
          - id: second
            type: call
            service: Svc
            method: fail
            input: second failure
            on_error: last
          - id: last
            type: end
            result: $_last_error
        """)
    result = await engine.run(wf)
    assert result.output == {"step": "second", "type": "ValueError", "message": "second failure"}


async def test_a_failing_handler_without_a_handler_fails_the_run(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: first
            type: call
            service: Svc
            method: fail
            input: first failure
            on_error: second
          - id: second
            type: call
            service: Svc
            method: fail
            input: second failure
        """)
    result = await engine.run(wf)
    assert result.status == "failed"
    assert result.error["message"] == "second failure"


# ---------------------------------------------------------------------------- workflow timeout


TIMED = """
    timeout: 60
    steps:
      - id: slow
        type: call
        service: Svc
        method: take_time
        input: {seconds: $input.seconds}
        next: wait
      - id: wait
        type: halt
        reason: waiting
        next: finish
      - id: finish
        type: end
        result: done
    """


async def test_a_run_past_the_workflow_timeout_fails_with_workflow_timeout(
    engine: dwf.Engine,
) -> None:
    result = await engine.run(workflow(TIMED), {"seconds": 61})
    assert result.status == "failed"
    assert result.error["type"] == "WorkflowTimeout"
    assert "ran past its timeout (60s)" in result.error["message"]
    record = await engine.get(result.execution_id)
    assert record.status == dwf.Status.FAILED
    # progress is kept, unlike the original which saved the initial state (defect 27)
    assert [e.step_id for e in await engine.entries(result.execution_id)] == ["slow"]


async def test_a_run_within_the_workflow_timeout_completes(
    engine: dwf.Engine, clock: Clock
) -> None:
    result = await engine.run(workflow(TIMED), {"seconds": 10})
    assert result.status == "halted"
    clock.advance(49)
    result = await engine.resume(result.execution_id, response="ok")
    assert result.output == "done"


async def test_the_workflow_timeout_holds_across_a_halt(engine: dwf.Engine, clock: Clock) -> None:
    result = await engine.run(workflow(TIMED), {"seconds": 1})
    assert result.status == "halted"
    clock.advance(60)
    result = await engine.resume(result.execution_id, response="too late")
    assert result.status == "failed"
    assert result.error["type"] == "WorkflowTimeout"


async def test_recover_fails_a_halted_execution_past_its_deadline(
    engine: dwf.Engine, clock: Clock
) -> None:
    result = await engine.run(workflow(TIMED), {"seconds": 1})
    clock.advance(30)
    assert await engine.recover() == []
    clock.advance(30)
    [recovered] = await engine.recover()
    assert recovered.execution_id == result.execution_id
    assert (recovered.status, recovered.error["type"]) == ("failed", "WorkflowTimeout")


async def test_the_workflow_timeout_stops_a_hanging_step() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    engine = dwf.Engine("memory://", services={"hang": hang})
    wf = workflow("""
        timeout: 0.05
        steps:
          - id: stuck
            type: call
            service: hang
            method: hang
        """)
    result = await engine.run(wf)
    assert (result.status, result.error["type"]) == ("failed", "WorkflowTimeout")


async def test_the_workflow_timeout_stops_a_hanging_step_whatever_the_clock_says(
    clock: Clock,
) -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    engine = dwf.Engine("memory://", services={"hang": hang}, clock=clock)
    wf = workflow("""
        timeout: 0.05
        steps:
          - id: stuck
            type: call
            service: hang
            method: hang
        """)
    result = await engine.run(wf)  # the injected clock stands still meanwhile
    assert (result.status, result.error["type"]) == ("failed", "WorkflowTimeout")


# ---------------------------------------------------------------------------- transitions


async def test_resuming_a_completed_execution_is_an_invalid_transition(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: finish
            type: end
        """)
    result = await engine.run(wf)
    with pytest.raises(dwf.InvalidTransition, match="is completed") as info:
        await engine.resume(result.execution_id, response="again")
    assert "only halted executions can be resumed" in str(info.value)
    assert (await engine.get(result.execution_id)).status == dwf.Status.COMPLETED


async def test_resuming_a_failed_execution_is_an_invalid_transition(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(FAILING))
    with pytest.raises(dwf.InvalidTransition, match="is failed"):
        await engine.resume(result.execution_id)
    entries = await engine.entries(result.execution_id)
    assert [e.action for e in entries] == ["completed", "failed"]  # nothing ran again


async def test_resuming_a_running_execution_is_an_invalid_transition() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def gate() -> str:
        started.set()
        await asyncio.wait_for(release.wait(), timeout=5)
        return "released"

    engine = dwf.Engine("memory://", services={"gate": gate})
    wf = workflow("""
        steps:
          - id: hold
            type: call
            service: gate
            method: gate
            output: out
            next: finish
          - id: finish
            type: end
            result: $out
        """)
    task = asyncio.ensure_future(engine.run(wf, execution_id="busy"))
    await asyncio.wait_for(started.wait(), timeout=5)
    with pytest.raises(dwf.InvalidTransition, match="is running"):
        await engine.resume("busy", response="now")
    release.set()
    assert (await task).output == "released"


async def test_resuming_a_pending_or_cancelled_execution_is_an_invalid_transition(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: wait
            type: halt
        """)
    pending = await engine.start(wf)
    with pytest.raises(dwf.InvalidTransition, match="is pending"):
        await engine.resume(pending)
    halted = await engine.run(wf)
    await engine.cancel(halted.execution_id)
    with pytest.raises(dwf.InvalidTransition, match="is cancelled"):
        await engine.resume(halted.execution_id)


async def test_an_unknown_execution_id_is_execution_not_found(engine: dwf.Engine) -> None:
    with pytest.raises(dwf.ExecutionNotFound, match="no execution 'missing'"):
        await engine.resume("missing")
    with pytest.raises(dwf.ExecutionNotFound):
        await engine.get("missing")
    with pytest.raises(dwf.ExecutionNotFound):
        await engine.entries("missing")


async def test_a_duplicate_execution_id_is_refused(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: finish
            type: end
        """)
    await engine.run(wf, execution_id="once")
    with pytest.raises(dwf.InvalidTransition, match="already exists"):
        await engine.run(wf, execution_id="once")


# ---------------------------------------------------------------------------- input


INPUTS = """
    inputs:
      name: {type: string}
      count: {type: integer, required: false}
      ratio: {type: number, required: false}
      flag: {type: boolean, required: false}
      items: {type: array, required: false}
      options: {type: object, required: false}
      anything: {required: false}
      level: {type: integer, default: 3}
    steps:
      - id: finish
        type: end
        result: $input
    """


async def test_valid_input_is_available_as_input_with_defaults_applied(
    engine: dwf.Engine,
) -> None:
    given = {
        "name": "Ann",
        "count": 2,
        "ratio": 1,
        "flag": False,
        "items": [1],
        "options": {"a": None},
        "anything": [{"x": 1}],
    }
    result = await engine.run(workflow(INPUTS), given)
    assert result.output == {**given, "level": 3}
    assert (await engine.get(result.execution_id)).input == {**given, "level": 3}


async def test_a_missing_required_input_is_refused_before_anything_runs(
    engine: dwf.Engine,
) -> None:
    with pytest.raises(dwf.InputValidationError, match="missing required input 'name'"):
        await engine.run(workflow(INPUTS), {})
    assert await engine.store.find() == []


async def test_an_explicit_null_counts_as_missing(engine: dwf.Engine) -> None:
    with pytest.raises(dwf.InputValidationError, match="missing required input 'name'"):
        await engine.run(workflow(INPUTS), {"name": None})


async def test_defaults_are_applied_before_the_required_check(engine: dwf.Engine) -> None:
    # `level` is required (the default) but has a default, so it may be omitted (defect 32)
    result = await engine.run(workflow(INPUTS), {"name": "Ann", "level": None})
    assert result.output == {"name": "Ann", "level": 3}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("name", 5, "input 'name' must be string, got"),
        ("count", True, "input 'count' must be integer, got"),
        ("count", 1.5, "input 'count' must be integer, got"),
        ("ratio", "1.5", "input 'ratio' must be number, got"),
        ("ratio", False, "input 'ratio' must be number, got"),
        ("flag", "true", "input 'flag' must be boolean, got"),
        ("items", {"a": 1}, "input 'items' must be array, got"),
        ("options", [1], "input 'options' must be object, got"),
    ],
)
async def test_input_types_are_checked(
    engine: dwf.Engine, name: str, value: Any, expected: str
) -> None:
    given = {"name": "Ann", name: value}
    with pytest.raises(dwf.InputValidationError, match=expected):
        await engine.run(workflow(INPUTS), given)


async def test_unknown_input_names_are_refused_with_a_suggestion(engine: dwf.Engine) -> None:
    with pytest.raises(dwf.InputValidationError) as info:
        await engine.run(workflow(INPUTS), {"name": "Ann", "cuont": 1})
    message = str(info.value)
    assert "unknown input 'cuont' (did you mean 'count'?)" in message
    assert "declared inputs: name, count" in message


async def test_every_input_problem_is_reported_at_once(engine: dwf.Engine) -> None:
    with pytest.raises(dwf.InputValidationError) as info:
        await engine.run(workflow(INPUTS), {"count": "x", "bogus": 1})
    message = str(info.value)
    assert "invalid input for workflow 'test'" in message
    assert "missing required input 'name'" in message
    assert "input 'count' must be integer" in message
    assert "unknown input 'bogus'" in message


async def test_without_declared_inputs_any_input_is_accepted(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: finish
            type: end
            result: $input
        """)
    assert (await engine.run(wf, {"free": [1, {"form": True}]})).output == {
        "free": [1, {"form": True}]
    }
    assert (await engine.run(wf)).output == {}


async def test_an_input_that_is_not_a_mapping_is_refused(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: finish
            type: end
        """)
    with pytest.raises(dwf.InputValidationError, match="must be a JSON object, got"):
        await engine.run(wf, ["not", "a", "mapping"])  # type: ignore[arg-type]


async def test_input_and_now_references_resolve(engine: dwf.Engine, clock: Clock) -> None:
    wf = workflow("""
        steps:
          - id: finish
            type: end
            result:
              whole: $input
              nested: $input.order.lines.1.sku
              text: "order $input.order.id at $now"
              now: $now
        """)
    order = {"id": "A-1", "lines": [{"sku": "X"}, {"sku": "Y"}]}
    result = await engine.run(wf, {"order": order})
    now = datetime.fromtimestamp(T0, UTC)
    assert result.output["whole"] == {"order": order}
    assert result.output["nested"] == "Y"
    assert datetime.fromisoformat(result.output["now"]) == now
    assert result.output["text"] == f"order A-1 at {result.output['now']}"
