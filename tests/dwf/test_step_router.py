"""The ``router`` step: first matching route, default, and failures."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

import dwf


def workflow(text: str) -> dwf.WorkflowDefinition:
    """Parse a workflow; ``id`` and ``name`` are added when the text has none."""
    text = textwrap.dedent(text)
    if not text.lstrip().startswith("id:"):
        text = "id: test\nname: Test\n" + text
    return dwf.parse_workflow(text)


SIZES = """
    inputs:
      amount: {type: number}
    steps:
      - id: route
        type: router
        routes:
          - when: {field: input.amount, op: lt, value: 50}
            then: small
          - when: {field: input.amount, op: lt, value: 100}
            then: medium
        default: large
      - id: small
        type: end
        result: small
      - id: medium
        type: end
        result: medium
      - id: large
        type: end
        result: large
    """


@pytest.fixture
def engine() -> dwf.Engine:
    return dwf.Engine("memory://")


@pytest.mark.parametrize(
    ("amount", "target"),
    [
        (10, "small"),
        (49.9, "small"),
        (50, "medium"),
        (75, "medium"),
        (100, "large"),
        (1e9, "large"),
    ],
)
async def test_the_first_matching_route_wins_else_the_default(
    engine: dwf.Engine, amount: Any, target: str
) -> None:
    result = await engine.run(workflow(SIZES), {"amount": amount})
    assert (result.status, result.output) == ("completed", target)


async def test_the_router_records_which_route_it_took(engine: dwf.Engine) -> None:
    first = await engine.run(workflow(SIZES), {"amount": 75})
    default = await engine.run(workflow(SIZES), {"amount": 150})
    [route_entry, _] = await engine.entries(first.execution_id)
    assert route_entry.output == {"route": 1, "next": "medium"}
    [route_entry, _] = await engine.entries(default.execution_id)
    assert route_entry.output == {"route": "default", "next": "large"}


async def test_no_match_and_no_default_fails_the_step(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: route
            type: router
            routes:
              - when: {field: x, op: eq, value: 1}
                then: done
          - id: done
            type: end
        """)
    result = await engine.run(wf)
    assert result.status == "failed"
    assert result.error["step"] == "route"
    assert result.error["type"] == "StepFailed"
    assert "no route of router 'route' matched" in result.error["message"]
    assert "add a default route" in result.error["message"]


async def test_no_match_can_be_handled_by_on_error(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: route
            type: router
            routes: []
            on_error: handler
          - id: handler
            type: end
            result: $_last_error.step
        """)
    assert (await engine.run(wf)).output == "route"


async def test_a_missing_op_means_eq(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {status: ready}
            next: route
          - id: route
            type: router
            routes:
              - when: {field: status, value: ready}
                then: yes
            default: no
          - id: yes
            type: end
            result: yes
          - id: no
            type: end
            result: no
        """)
    assert (await engine.run(wf)).output == "yes"


async def test_the_field_may_be_written_with_a_dollar(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: route
            type: router
            routes:
              - when: {field: $input.tier, op: in, value: [gold, platinum]}
                then: vip
            default: regular
          - id: vip
            type: end
            result: vip
          - id: regular
            type: end
            result: regular
        """)
    assert (await engine.run(wf, {"tier": "gold"})).output == "vip"
    assert (await engine.run(wf, {"tier": "tin"})).output == "regular"


async def test_the_value_may_reference_a_variable(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {limit: 100, amount: 150}
            next: route
          - id: route
            type: router
            routes:
              - when: {field: amount, op: gt, value: $limit}
                then: over
            default: under
          - id: over
            type: end
            result: over
          - id: under
            type: end
            result: under
        """)
    assert (await engine.run(wf)).output == "over"


async def test_a_false_value_in_a_nested_path_is_not_read_as_missing(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: route
            type: router
            routes:
              - when: {field: input.check.valid, op: eq, value: false}
                then: invalid
              - when: {field: input.check.valid, op: exists}
                then: valid
            default: missing
          - id: invalid
            type: end
            result: invalid
          - id: valid
            type: end
            result: valid
          - id: missing
            type: end
            result: missing
        """)
    assert (await engine.run(wf, {"check": {"valid": False}})).output == "invalid"
    assert (await engine.run(wf, {"check": {"valid": True}})).output == "valid"
    assert (await engine.run(wf, {"check": {}})).output == "missing"


async def test_a_condition_that_cannot_be_evaluated_fails_the_step(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: route
            type: router
            routes:
              - when: {field: input.amount, op: gt, value: 10}
                then: big
            default: small
          - id: big
            type: end
          - id: small
            type: end
        """)
    result = await engine.run(wf, {"amount": "lots"})
    assert result.status == "failed"
    assert result.error["type"] == "ExpressionError"
    assert result.error["step"] == "route"


async def test_the_router_own_next_is_never_used(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: route
            type: router
            routes: []
            default: chosen
            next: ignored
          - id: ignored
            type: end
            result: ignored
          - id: chosen
            type: end
            result: chosen
        """)
    assert (await engine.run(wf)).output == "chosen"


async def test_routes_can_loop_back_to_an_earlier_step(engine: dwf.Engine) -> None:
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def next(self) -> int:
            self.n += 1
            return self.n

    engine = dwf.Engine("memory://", services={"Counter": Counter()})
    wf = workflow("""
        steps:
          - id: count
            type: call
            service: Counter
            method: next
            output: n
            next: route
          - id: route
            type: router
            routes:
              - when: {field: n, op: lt, value: 3}
                then: count
            default: done
          - id: done
            type: end
            result: $n
        """)
    result = await engine.run(wf)
    assert result.output == 3
    paths = [e.step_path for e in await engine.entries(result.execution_id)]
    assert paths == ["count", "route", "count", "route", "count", "route", "done"]


async def test_a_route_to_a_missing_step_fails_the_run(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: route
            type: router
            routes: []
            default: nowhere
        """)
    result = await engine.run(wf)
    assert result.status == "failed"
    assert result.error["type"] == "StepNotFound"
    assert "nowhere" in result.error["message"]


def test_an_unknown_operator_is_rejected_when_the_workflow_loads() -> None:
    with pytest.raises(dwf.WorkflowLoadError, match=r"routes\.0\.when\.op"):
        workflow("""
            steps:
              - id: route
                type: router
                routes:
                  - when: {field: x, op: bigger, value: 1}
                    then: route
            """)


def test_a_route_without_then_is_rejected_when_the_workflow_loads() -> None:
    with pytest.raises(dwf.WorkflowLoadError, match="then"):
        workflow("""
            steps:
              - id: route
                type: router
                routes:
                  - when: {field: x}
            """)
