"""The ``transform`` step's wiring: input, output, chaining and failures.

The operations themselves are tested in test_transform_ops.py.
"""

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


PEOPLE = [
    {"name": "Alice", "active": True, "age": 30},
    {"name": "Bob", "active": False, "age": 25},
    {"name": "Charlie", "active": True, "age": 41},
]


@pytest.fixture
def engine() -> dwf.Engine:
    return dwf.Engine("memory://")


def transform(input_line: str, expression: str) -> dwf.WorkflowDefinition:
    return workflow(f"""
        steps:
          - id: set
            type: assign
            set: {{people: $input.people, data: {{list: [3, 1, 2]}}}}
            next: shape
          - id: shape
            type: transform
            {input_line}
            expression: {expression}
            output: shaped
            next: finish
          - id: finish
            type: end
            result: $shaped
        """)


async def test_transform_reads_a_bare_variable_path(engine: dwf.Engine) -> None:
    wf = transform("input: people", "{select: {active: true}, pluck: name}")
    result = await engine.run(wf, {"people": PEOPLE})
    assert result.output == ["Alice", "Charlie"]


async def test_transform_input_may_be_written_with_a_dollar(engine: dwf.Engine) -> None:
    # the original turned "$people" into a string (defect 42)
    wf = transform("input: $people", "{count: null}")
    assert (await engine.run(wf, {"people": PEOPLE})).output == 3


async def test_transform_input_may_be_a_nested_path(engine: dwf.Engine) -> None:
    wf = transform("input: data.list", "{sort: null, reverse: null}")
    assert (await engine.run(wf, {"people": []})).output == [3, 2, 1]


async def test_transform_input_may_read_the_run_input(engine: dwf.Engine) -> None:
    wf = transform("input: input.people", "{sum: age}")
    assert (await engine.run(wf, {"people": PEOPLE})).output == 96


async def test_transform_without_input_works_on_the_user_variables(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: fail
            type: call
            service: Nope
            method: nope
            on_error: set
          - id: set
            type: assign
            set: {a: 1, b: 2}
            next: shape
          - id: shape
            type: transform
            expression: {keys: null}
            output: names
            next: finish
          - id: finish
            type: end
            result: $names
        """)
    # dwf's own `_last_error` is not a user variable
    assert sorted((await engine.run(wf)).output) == ["a", "b"]


async def test_operations_apply_in_mapping_order(engine: dwf.Engine) -> None:
    first_then_reverse = transform("input: data.list", "{first: 2, reverse: null}")
    reverse_then_first = transform("input: data.list", "{reverse: null, first: 2}")
    assert (await engine.run(first_then_reverse, {"people": []})).output == [1, 3]
    assert (await engine.run(reverse_then_first, {"people": []})).output == [2, 1]


async def test_transform_stores_its_output_and_records_it(engine: dwf.Engine) -> None:
    wf = transform("input: people", "{pluck: name}")
    result = await engine.run(wf, {"people": PEOPLE})
    record = await engine.get(result.execution_id)
    assert record.variables["shaped"] == ["Alice", "Bob", "Charlie"]
    entry = next(e for e in await engine.entries(result.execution_id) if e.step_id == "shape")
    assert (entry.step_type, entry.output) == ("transform", ["Alice", "Bob", "Charlie"])


async def test_transform_does_not_change_its_input_variable(engine: dwf.Engine) -> None:
    wf = transform("input: people", "{sort: age, reverse: null}")
    result = await engine.run(wf, {"people": PEOPLE})
    assert result.status == "completed"
    record = await engine.get(result.execution_id)
    assert record.variables["people"] == PEOPLE


async def test_transform_continues_to_next(engine: dwf.Engine) -> None:
    wf = transform("input: data.list", "{count: null}")
    result = await engine.run(wf, {"people": []})
    steps = [e.step_id for e in await engine.entries(result.execution_id)]
    assert steps == ["set", "shape", "finish"]


async def test_a_transform_on_data_of_the_wrong_shape_fails_the_step(engine: dwf.Engine) -> None:
    wf = transform("input: data", "{pluck: name}")
    result = await engine.run(wf, {"people": []})
    assert result.status == "failed"
    assert result.error["type"] == "ExpressionError"
    assert result.error["step"] == "shape"
    assert "pluck" in result.error["message"]


async def test_an_unknown_operation_fails_the_step_with_a_suggestion(engine: dwf.Engine) -> None:
    wf = transform("input: data.list", "{revers: null}")
    result = await engine.run(wf, {"people": []})
    assert result.status == "failed"
    assert "unknown transform operation 'revers'" in result.error["message"]
    assert "reverse" in result.error["message"]


async def test_a_failed_transform_can_be_handled_by_on_error(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: shape
            type: transform
            input: missing
            expression: {first: 1}
            output: shaped
            on_error: handler
          - id: handler
            type: end
            result: {shaped: $shaped, failed: $_last_error.step}
        """)
    assert (await engine.run(wf)).output == {"shaped": None, "failed": "shape"}


def test_transform_requires_expression_and_output() -> None:
    with pytest.raises(dwf.WorkflowLoadError) as info:
        workflow("""
            steps:
              - id: shape
                type: transform
                input: x
            """)
    message = str(info.value)
    assert "expression" in message
    assert "output" in message
