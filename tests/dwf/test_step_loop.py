"""The ``loop`` step: foreach and while, limits, break, results, and durable iterations."""

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
    """Records every call so tests can see which iterations ran (and ran only once)."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def record(self, value: Any) -> Any:
        self.calls.append(value)
        return value

    def double(self, value: int) -> int:
        self.calls.append(value)
        return value * 2

    def fail_on(self, value: Any, bad: Any) -> Any:
        self.calls.append(value)
        if value == bad:
            raise ValueError(f"cannot handle {value}")
        return value


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(recorder: Recorder) -> dwf.Engine:
    return dwf.Engine("memory://", services={"Rec": recorder})


# -------------------------------------------------------------------------------------- foreach


async def test_foreach_collects_the_last_body_output_of_each_iteration(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: $input.numbers
            output: doubled
            next: finish
            do:
              - id: double
                type: call
                service: Rec
                method: double
                input: $item
          - id: finish
            type: end
            result: $doubled
        """)
    result = await engine.run(wf, {"numbers": [1, 2, 3]})
    assert result.output == [2, 4, 6]
    assert recorder.calls == [1, 2, 3]


async def test_foreach_exposes_item_and_index_to_the_body(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [a, b]
            output: labels
            next: finish
            do:
              - id: text
                type: assign
                set: {label: "$index:$item"}
          - id: finish
            type: end
            result: $labels
        """)
    # an assign's output is what it assigned
    assert (await engine.run(wf)).output == [{"label": "0:a"}, {"label": "1:b"}]


async def test_foreach_uses_custom_names_for_item_and_index(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [x, y]
            as: letter
            index_as: position
            output: out
            next: finish
            do:
              - id: pair
                type: call
                service: Rec
                method: record
                input: [$position, $letter]
          - id: finish
            type: end
            result: $out
        """)
    assert (await engine.run(wf)).output == [[0, "x"], [1, "y"]]


async def test_foreach_over_an_empty_list_runs_no_body(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: []
            output: out
            next: finish
            do:
              - id: rec
                type: call
                service: Rec
                method: record
                input: $item
          - id: finish
            type: end
            result: $out
        """)
    assert (await engine.run(wf)).output == []
    assert recorder.calls == []


async def test_loop_variables_are_restored_after_the_loop(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {item: mine}
            next: each
          - id: each
            type: loop
            over: [1, 2]
            next: finish
            do:
              - id: touch
                type: assign
                set: {last: $item}
          - id: finish
            type: end
        """)
    # `item` had a value before the loop and gets it back; `index` did not and is gone
    assert (await engine.run(wf)).output == {"item": "mine", "last": 2}


async def test_foreach_over_a_non_list_fails(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: $input.things
            do: []
        """)
    result = await engine.run(wf, {"things": {"a": 1}})
    assert result.status == "failed"
    assert "'over' must be a list, got" in result.error["message"]
    assert result.error["step"] == "each"


async def test_foreach_over_more_items_than_max_fails(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1, 2, 3, 4, 5]
            max: 2
            do:
              - id: rec
                type: call
                service: Rec
                method: record
                input: $item
        """)
    result = await engine.run(wf)
    assert result.status == "failed"
    assert "5 items exceed 'max' (2)" in result.error["message"]
    assert recorder.calls == []


async def test_foreach_over_more_items_than_max_goes_to_on_exhausted(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1, 2, 3]
            max: 2
            on_exhausted: too_many
            next: finish
            do: []
          - id: finish
            type: end
            result: fine
          - id: too_many
            type: end
            result: too many
        """)
    assert (await engine.run(wf)).output == "too many"


async def test_the_loop_entry_counts_iterations_and_body_entries_are_nested(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1, 2]
            do:
              - id: a
                type: assign
                set: {x: $item}
              - id: b
                type: assign
                set: {y: $x}
        """)
    result = await engine.run(wf)
    entries = await engine.entries(result.execution_id)
    assert [(e.step_path, e.step_id) for e in entries] == [
        ("each[0]/a", "a"),
        ("each[0]/b", "b"),
        ("each[1]/a", "a"),
        ("each[1]/b", "b"),
        ("each", "each"),
    ]
    assert entries[-1].output == {"iterations": 2}


async def test_body_steps_follow_next_and_routers_inside_an_iteration(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1, 2, 3]
            output: kinds
            next: finish
            do:
              - id: route
                type: router
                routes:
                  - when: {field: item, op: eq, value: 2}
                    then: even
                default: odd
              - id: odd
                type: assign
                set: {kind: odd}
                next: done
              - id: even
                type: assign
                set: {kind: even}
              - id: done
                type: assign
                set: {seen: "$item:$kind"}
                next: __FINISHED__
              - id: never
                type: assign
                set: {seen: never}
          - id: finish
            type: end
            result: $kinds
        """)
    result = await engine.run(wf)
    assert result.output == [{"seen": "1:odd"}, {"seen": "2:even"}, {"seen": "3:odd"}]
    paths = [e.step_path for e in await engine.entries(result.execution_id)]
    assert paths[:6] == [
        "each[0]/route",
        "each[0]/odd",
        "each[0]/done",
        "each[1]/route",
        "each[1]/even",
        "each[1]/done",
    ]
    assert not any(p.endswith("/never") for p in paths)


async def test_nested_loops_have_nested_paths(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: rows
            type: loop
            over: [[1, 2], [3]]
            as: row
            index_as: r
            output: table
            next: finish
            do:
              - id: cols
                type: loop
                over: $row
                output: cells
                do:
                  - id: cell
                    type: call
                    service: Rec
                    method: double
                    input: $item
              - id: keep
                type: assign
                set: {row_result: $cells}
          - id: finish
            type: end
            result: $table
        """)
    result = await engine.run(wf)
    assert result.output == [{"row_result": [2, 4]}, {"row_result": [6]}]
    paths = [e.step_path for e in await engine.entries(result.execution_id)]
    assert "rows[0]/cols[1]/cell" in paths
    assert "rows[1]/cols[0]/cell" in paths


# ---------------------------------------------------------------------------------------- while


async def test_while_repeats_while_the_condition_holds_with_a_one_based_iteration(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {n: 0}
            next: repeat
          - id: repeat
            type: loop
            while: {field: n, op: lt, value: 3}
            output: seen
            next: finish
            do:
              - id: inc
                type: assign
                set: {n: $iteration, at: "iteration $iteration"}
          - id: finish
            type: end
            result: {seen: $seen, n: $n, iteration: $iteration}
        """)
    result = await engine.run(wf)
    assert result.output == {
        "seen": [
            {"n": 1, "at": "iteration 1"},
            {"n": 2, "at": "iteration 2"},
            {"n": 3, "at": "iteration 3"},
        ],
        "n": 3,
        "iteration": None,
    }


async def test_while_with_a_false_condition_runs_no_body(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: repeat
            type: loop
            while: {field: input.go, op: truthy}
            output: seen
            next: finish
            do:
              - id: rec
                type: call
                service: Rec
                method: record
                input: $iteration
          - id: finish
            type: end
            result: {seen: $seen, iteration: $iteration}
        """)
    result = await engine.run(wf, {"go": False})
    assert result.output == {"seen": [], "iteration": None}
    assert recorder.calls == []


async def test_while_past_max_fails(engine: dwf.Engine, recorder: Recorder) -> None:
    wf = workflow("""
        steps:
          - id: forever
            type: loop
            while: {field: input.go, op: truthy}
            max: 3
            do:
              - id: rec
                type: call
                service: Rec
                method: record
                input: $iteration
        """)
    result = await engine.run(wf, {"go": True})
    assert result.status == "failed"
    assert "reached 'max' (3) iterations" in result.error["message"]
    assert recorder.calls == [1, 2, 3]


async def test_while_past_max_goes_to_on_exhausted_with_partial_results(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: forever
            type: loop
            while: {field: input.go, op: truthy}
            max: 2
            on_exhausted: exhausted
            output: seen
            next: finish
            do:
              - id: rec
                type: call
                service: Rec
                method: record
                input: $iteration
          - id: finish
            type: end
            result: normal
          - id: exhausted
            type: end
            result: {seen: $seen, iteration: $iteration, break_loop: $break_loop}
        """)
    result = await engine.run(wf, {"go": True})
    # unlike the original, the loop variables are cleaned up and the output is stored (38)
    assert result.output == {"seen": [1, 2], "iteration": None, "break_loop": None}


async def test_break_loop_stops_a_while_loop_and_is_removed(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: forever
            type: loop
            while: {field: input.go, op: truthy}
            max: 10
            output: seen
            next: finish
            do:
              - id: rec
                type: call
                service: Rec
                method: record
                input: $iteration
              - id: stop
                type: router
                routes:
                  - when: {field: iteration, op: gte, value: 3}
                    then: brk
                default: __FINISHED__
              - id: brk
                type: assign
                set: {break_loop: true}
          - id: finish
            type: end
        """)
    result = await engine.run(wf, {"go": True})
    assert recorder.calls == [1, 2, 3]
    assert set(result.output) == {"seen"}  # break_loop and iteration are gone
    assert len(result.output["seen"]) == 3
    assert result.output["seen"][-1] == {"break_loop": True}


async def test_break_loop_stops_a_foreach_loop(engine: dwf.Engine, recorder: Recorder) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1, 2, 3, 4]
            output: seen
            next: finish
            do:
              - id: rec
                type: call
                service: Rec
                method: record
                input: $item
              - id: stop
                type: assign
                set: {break_loop: true}
          - id: finish
            type: end
        """)
    result = await engine.run(wf)
    assert recorder.calls == [1]
    assert result.output == {"seen": [{"break_loop": True}]}


@pytest.mark.parametrize(
    "modes",
    ["", "over: [1]\n    while: {field: x, op: truthy}"],
    ids=["neither", "both"],
)
def test_a_loop_needs_exactly_one_of_over_and_while(modes: str) -> None:
    text = "steps:\n  - id: each\n    type: loop\n    do: []\n    " + modes
    with pytest.raises(dwf.WorkflowLoadError, match="exactly one of 'over'"):
        workflow(text)


# --------------------------------------------------------------------------- halts and resume


HALT_IN_LOOP = """
    steps:
      - id: each
        type: loop
        over: [a, b, c]
        output: answers
        next: finish
        do:
          - id: before
            type: call
            service: Rec
            method: record
            input: "before $item"
          - id: ask
            type: halt
            reason: "Question $index about $item"
          - id: after
            type: call
            service: Rec
            method: record
            input: "$item=$response"
      - id: finish
        type: end
        result: $answers
    """


async def test_a_halt_inside_a_loop_resumes_at_the_same_iteration(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    result = await engine.run(workflow(HALT_IN_LOOP))
    assert result.status == "halted"
    assert result.halt["prompt"] == "Question 0 about a"
    assert result.halt["path"] == "each[0]/ask"

    result = await engine.resume(result.execution_id, response="yes")
    assert result.status == "halted"
    assert result.halt["prompt"] == "Question 1 about b"
    assert result.halt["path"] == "each[1]/ask"

    result = await engine.resume(result.execution_id, response="no")
    assert result.halt["prompt"] == "Question 2 about c"
    result = await engine.resume(result.execution_id, response="maybe")

    assert result.status == "completed"
    assert result.output == ["a=yes", "b=no", "c=maybe"]
    # every service call ran exactly once: no iteration was re-run on resume (defect 36)
    assert recorder.calls == [
        "before a",
        "a=yes",
        "before b",
        "b=no",
        "before c",
        "c=maybe",
    ]


async def test_a_halt_inside_a_loop_resumes_in_a_new_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    first, second = Recorder(), Recorder()
    engine = dwf.Engine(url, services={"Rec": first})
    try:
        result = await engine.run(workflow(HALT_IN_LOOP))
        result = await engine.resume(result.execution_id, response="yes")
        assert result.halt["path"] == "each[1]/ask"
    finally:
        await engine.close()

    restarted = dwf.Engine(url, services={"Rec": second})
    try:
        result = await restarted.resume(result.execution_id, response="no")
        assert result.halt["path"] == "each[2]/ask"
        result = await restarted.resume(result.execution_id, response="ok")
    finally:
        await restarted.close()
    assert result.output == ["a=yes", "b=no", "c=ok"]
    assert first.calls == ["before a", "a=yes", "before b"]
    assert second.calls == ["b=no", "before c", "c=ok"]


async def test_a_halt_inside_a_while_loop_resumes_at_the_same_iteration(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: ask_until_done
            type: loop
            while: {field: answer, op: neq, value: done}
            output: answers
            next: finish
            do:
              - id: ask
                type: halt
                reason: "round $iteration"
              - id: keep
                type: call
                service: Rec
                method: record
                input: $response
              - id: store
                type: assign
                set: {answer: $response}
          - id: finish
            type: end
            result: {answers: $answers, iteration: $iteration}
        """)
    result = await engine.run(wf)
    prompts = [result.halt["prompt"]]
    for answer in ("more", "again"):
        result = await engine.resume(result.execution_id, response=answer)
        prompts.append(result.halt["prompt"])
    result = await engine.resume(result.execution_id, response="done")
    assert prompts == ["round 1", "round 2", "round 3"]
    assert result.output == {
        "answers": [{"answer": "more"}, {"answer": "again"}, {"answer": "done"}],
        "iteration": None,
    }
    assert recorder.calls == ["more", "again", "done"]


async def test_an_approval_inside_a_loop_is_decided_per_iteration(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [small, big]
            output: decisions
            next: finish
            do:
              - id: approve
                type: approval
                prompt: "Approve $item?"
                on_reject: rejected
              - id: approved
                type: assign
                set: {decision: "$item approved"}
                next: __FINISHED__
              - id: rejected
                type: assign
                set: {decision: "$item rejected"}
          - id: finish
            type: end
            result: $decisions
        """)
    result = await engine.run(wf)
    assert result.halt["prompt"] == "Approve small?"
    result = await engine.resume(result.execution_id, approved=True)
    assert result.halt["prompt"] == "Approve big?"
    result = await engine.resume(result.execution_id, approved=False)
    assert result.output == [{"decision": "small approved"}, {"decision": "big rejected"}]


# ----------------------------------------------------------------------------------- errors


async def test_an_error_handled_inside_the_body_lets_the_loop_go_on(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1, 2, 3]
            output: results
            next: finish
            do:
              - id: risky
                type: call
                service: Rec
                method: fail_on
                input: {value: $item, bad: 2}
                output: value
                on_error: recover
                next: __FINISHED__
              - id: recover
                type: assign
                set: {value: "failed: $_last_error.message", step: $_last_error.step}
          - id: finish
            type: end
            result: {results: $results, last_error: $_last_error}
        """)
    result = await engine.run(wf)
    assert result.status == "completed"
    assert result.output == {
        "results": [1, {"value": "failed: cannot handle 2", "step": "risky"}, 3],
        "last_error": None,
    }
    assert recorder.calls == [1, 2, 3]
    entries = await engine.entries(result.execution_id)
    failed = [e for e in entries if e.action == "failed"]
    assert [(e.step_path, e.error["type"]) for e in failed] == [("each[1]/risky", "ValueError")]


async def test_an_unhandled_error_in_the_body_fails_the_run_with_its_path(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1, 2, 3]
            do:
              - id: risky
                type: call
                service: Rec
                method: fail_on
                input: {value: $item, bad: 2}
        """)
    result = await engine.run(wf)
    assert result.status == "failed"
    assert result.error["path"] == "each[1]/risky"
    assert result.error["step"] == "risky"
    assert result.error["message"] == "cannot handle 2"
    assert recorder.calls == [1, 2]


async def test_the_loop_on_error_handles_a_failure_of_its_body(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {item: outer}
            next: each
          - id: each
            type: loop
            over: [1, 2, 3]
            output: results
            on_error: handler
            next: finish
            do:
              - id: risky
                type: call
                service: Rec
                method: fail_on
                input: {value: $item, bad: 2}
          - id: finish
            type: end
            result: fine
          - id: handler
            type: end
            result: {error: $_last_error, item: $item, index: $index, results: $results}
        """)
    result = await engine.run(wf)
    assert result.status == "completed"
    assert "cannot handle 2" in result.output["error"]["message"]
    assert result.output["item"] == "outer"
    assert result.output["index"] is None
    assert result.output["results"] is None
    assert recorder.calls == [1, 2]


async def test_a_break_loop_left_from_before_does_not_stop_the_loop(
    engine: dwf.Engine, recorder: Recorder
) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {break_loop: true}
            next: each
          - id: each
            type: loop
            over: [1, 2, 3]
            next: finish
            do:
              - id: rec
                type: call
                service: Rec
                method: record
                input: $item
          - id: finish
            type: end
            result: $break_loop
        """)
    result = await engine.run(wf)
    assert recorder.calls == [1, 2, 3]
    assert result.output is True  # restored after the loop, like the other loop variables
