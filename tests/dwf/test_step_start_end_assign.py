"""The ``start``, ``end`` and ``assign`` step types, run through the engine."""

from __future__ import annotations

import textwrap

import pytest

import dwf


def workflow(text: str) -> dwf.WorkflowDefinition:
    """Parse a workflow; ``id`` and ``name`` are added when the text has none."""
    text = textwrap.dedent(text)
    if not text.lstrip().startswith("id:"):
        text = "id: test\nname: Test\n" + text
    return dwf.parse_workflow(text)


@pytest.fixture
def engine() -> dwf.Engine:
    return dwf.Engine("memory://")


# ---------------------------------------------------------------------------------------- start


async def test_start_continues_to_its_next_step(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: start
            type: start
            next: finish
          - id: skipped
            type: assign
            set: {touched: true}
          - id: finish
            type: end
            result: {touched: $touched}
        """)
    result = await engine.run(wf)
    assert result.status == "completed"
    assert result.output == {"touched": None}
    assert [e.step_id for e in await engine.entries(result.execution_id)] == ["start", "finish"]


async def test_start_accepts_validate_input_for_compatibility(engine: dwf.Engine) -> None:
    wf = workflow("""
        inputs:
          n: {type: integer}
        steps:
          - id: start
            type: start
            validate_input: false
            next: finish
          - id: finish
            type: end
            result: $input.n
        """)
    assert (await engine.run(wf, {"n": 3})).output == 3
    # validation still happens: the key is accepted, not obeyed
    with pytest.raises(dwf.InputValidationError):
        await engine.run(wf, {"n": "three"})


async def test_start_records_a_completed_entry_without_output(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: start
            type: start
        """)
    result = await engine.run(wf)
    [entry] = await engine.entries(result.execution_id)
    assert (entry.step_id, entry.step_type, entry.action, entry.output) == (
        "start",
        "start",
        "completed",
        None,
    )


# ------------------------------------------------------------------------------------------ end


async def test_end_resolves_its_result_and_makes_it_the_output(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: start
            type: start
            next: set
          - id: set
            type: assign
            set: {data: {key: value}, n: 2}
            next: finish
          - id: finish
            type: end
            result:
              data: $data
              text: "n is $n"
              literal: 7
        """)
    result = await engine.run(wf)
    assert result.output == {"data": {"key": "value"}, "text": "n is 2", "literal": 7}
    record = await engine.get(result.execution_id)
    assert record.output == result.output
    assert record.variables["result"] == result.output


async def test_end_result_may_be_a_single_reference_keeping_its_type(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {items: [1, 2, 3]}
            next: finish
          - id: finish
            type: end
            result: $items
        """)
    assert (await engine.run(wf)).output == [1, 2, 3]


async def test_end_result_records_its_output_in_the_audit_entry(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: finish
            type: end
            result: {done: true}
        """)
    result = await engine.run(wf)
    [entry] = await engine.entries(result.execution_id)
    assert entry.output == {"done": True}


async def test_end_without_result_returns_the_user_variables_only(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: boom
            type: call
            service: Missing
            method: nope
            on_error: set
          - id: set
            type: assign
            set: {a: 1, b: [true]}
            next: finish
          - id: finish
            type: end
        """)
    result = await engine.run(wf, {})
    # neither `input` nor dwf's own `_last_error` leak into the output (defect 33)
    assert result.output == {"a": 1, "b": [True]}


async def test_end_stops_the_workflow_even_with_steps_after_it(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: finish
            type: end
            result: first
            next: more
          - id: more
            type: assign
            set: {x: 1}
        """)
    result = await engine.run(wf)
    assert result.output == "first"
    assert [e.step_id for e in await engine.entries(result.execution_id)] == ["finish"]


async def test_a_last_step_without_next_completes_the_workflow_without_output(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {x: 1}
        """)
    result = await engine.run(wf)
    assert (result.status, result.output) == ("completed", None)
    assert (await engine.get(result.execution_id)).variables == {"x": 1}


async def test_next_finished_ends_the_workflow_like_the_original(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {x: 1}
            next: __FINISHED__
          - id: never
            type: assign
            set: {x: 2}
        """)
    result = await engine.run(wf)
    assert result.status == "completed"
    assert (await engine.get(result.execution_id)).variables == {"x": 1}


async def test_end_result_null_means_absent_and_returns_the_variables(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {x: 1}
            next: finish
          - id: finish
            type: end
            result: null
        """)
    assert (await engine.run(wf)).output == {"x": 1}


# --------------------------------------------------------------------------------------- assign


async def test_assign_sets_static_values_of_every_json_type(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set:
              text: hello
              number: 1.5
              integer: 3
              flag: false
              nothing: null
              items: [1, two]
              mapping: {a: {b: c}}
        """)
    result = await engine.run(wf)
    assert (await engine.get(result.execution_id)).variables == {
        "text": "hello",
        "number": 1.5,
        "integer": 3,
        "flag": False,
        "nothing": None,
        "items": [1, "two"],
        "mapping": {"a": {"b": "c"}},
    }


async def test_assign_runs_in_order_so_later_values_see_earlier_ones(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set:
              a: 1
              b: $a
              c: "a=$a b=$b"
            next: finish
          - id: finish
            type: end
            result: {a: $a, b: $b, c: $c}
        """)
    assert (await engine.run(wf)).output == {"a": 1, "b": 1, "c": "a=1 b=1"}


async def test_assign_resolves_references_to_input_and_keeps_native_types(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set:
              order: $input.order
              first_sku: $input.order.items.0.sku
              flag: $input.flag
              summary: "order $input.order.id has $input.count items"
            next: finish
          - id: finish
            type: end
        """)
    order = {"id": "A-1", "items": [{"sku": "X"}]}
    result = await engine.run(wf, {"order": order, "flag": False, "count": 1})
    assert result.output == {
        "order": order,
        "first_sku": "X",
        "flag": False,
        "summary": "order A-1 has 1 items",
    }


async def test_assign_keeps_existing_variables_and_overwrites_reassigned_ones(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: one
            type: assign
            set: {keep: 1, change: old}
            next: two
          - id: two
            type: assign
            set: {before: $change, change: new, after: $change}
        """)
    result = await engine.run(wf)
    variables = (await engine.get(result.execution_id)).variables
    assert variables == {"keep": 1, "change": "new", "before": "old", "after": "new"}


async def test_assign_records_the_assigned_values_as_its_output(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {x: 1, y: "$x!"}
        """)
    result = await engine.run(wf)
    [entry] = await engine.entries(result.execution_id)
    assert (entry.action, entry.output) == ("completed", {"x": 1, "y": "1!"})


async def test_a_failing_assign_writes_none_of_its_variables(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set:
              a: 1
              b: $now.year
            on_error: finish
          - id: finish
            type: end
            result: {a: $a, error: $_last_error.type}
        """)
    result = await engine.run(wf)
    assert result.output == {"a": None, "error": "ExpressionError"}


async def test_assign_with_an_empty_set_changes_nothing(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            next: finish
          - id: finish
            type: end
        """)
    assert (await engine.run(wf)).output == {}


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        ("{input: 1}", "'input' is reserved"),
        ('{"not a name": 1}', "must be an identifier"),
    ],
)
def test_assign_rejects_reserved_and_invalid_names_at_load_time(
    assignments: str, message: str
) -> None:
    with pytest.raises(dwf.WorkflowLoadError, match=message):
        workflow(f"""
            steps:
              - id: set
                type: assign
                set: {assignments}
            """)


async def test_assigned_variables_are_persisted_in_sqlite(tmp_path: object) -> None:
    engine = dwf.Engine(f"sqlite:///{tmp_path}/x.db")
    try:
        wf = workflow("""
            steps:
              - id: set
                type: assign
                set: {nested: {list: [1, {deep: true}]}, text: "é"}
            """)
        result = await engine.run(wf)
    finally:
        await engine.close()
    reopened = dwf.Engine(f"sqlite:///{tmp_path}/x.db")
    try:
        record = await reopened.get(result.execution_id)
        assert record.variables == {"nested": {"list": [1, {"deep": True}]}, "text": "é"}
    finally:
        await reopened.close()
