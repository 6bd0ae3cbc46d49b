"""Parsing: YAML/dicts -> typed definitions, with every error located (ORIGINAL.md 13.2, 13.4)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dwf
from dwf.dsl.model import StepDef
from dwf.errors import Diagnostic, DwfError, WorkflowLoadError
from dwf.extensions import Continue, Registry, StepConfig, StepType, TopLevelKey, default_registry


def errors_of(source: Any, **kwargs: Any) -> list[Diagnostic]:
    with pytest.raises(WorkflowLoadError) as info:
        dwf.parse_workflow(source, **kwargs)
    return info.value.errors


def one_error(source: Any, **kwargs: Any) -> Diagnostic:
    errors = errors_of(source, **kwargs)
    assert len(errors) == 1, errors
    return errors[0]


ORDER = """\
id: order
name: Order
version: "1.0"
inputs:
  order_id:
    type: string
    description: The order
  amount:
    type: number
    required: false
    default: 0
  note:
steps:
  - id: start
    type: start
    next: charge
  - id: charge
    type: call
    service: Payments
    method: charge
    input: {id: $input.order_id}
    output: {key: receipt, schema: {type: object, properties: {id: {type: string}}}}
    retries: 3
    retry_delay: 1
    next: end
  - id: end
    type: end
    result: $receipt
"""


def test_a_workflow_parses_from_text_from_a_path_and_from_a_dict(tmp_path: Path) -> None:
    file = tmp_path / "order.yml"
    file.write_text(ORDER)
    from_text = dwf.parse_workflow(ORDER)
    from_path = dwf.parse_workflow(file)
    import yaml

    from_dict = dwf.parse_workflow(yaml.safe_load(ORDER))
    assert from_text.hash == from_path.hash == from_dict.hash
    assert from_path.file == str(file)
    assert [s.id for s in from_text.steps] == ["start", "charge", "end"]


def test_inputs_keep_their_order_types_defaults_and_a_null_spec() -> None:
    workflow = dwf.parse_workflow(ORDER)
    assert list(workflow.inputs) == ["order_id", "amount", "note"]
    assert workflow.inputs["order_id"].type == "string"
    assert workflow.inputs["order_id"].required is True
    assert workflow.inputs["amount"].default == 0
    assert workflow.inputs["note"].type == "any"
    assert workflow.inputs["note"].required is True


def test_integers_are_accepted_where_numbers_are_expected() -> None:
    charge = dwf.parse_workflow(ORDER).step("charge")
    assert charge is not None
    assert charge.config.retry_delay == 1.0  # type: ignore[attr-defined]
    assert charge.config.retries == 3  # type: ignore[attr-defined]
    assert charge.config.output_key == "receipt"  # type: ignore[attr-defined]


def test_an_unquoted_version_is_text() -> None:
    workflow = dwf.parse_workflow(ORDER.replace('version: "1.0"', "version: 1.0"))
    assert workflow.version == "1.0"


def test_null_means_absent_so_defaults_apply() -> None:
    text = ORDER.replace("retries: 3", "retries: null").replace("retry_delay: 1", "retry_delay:")
    charge = dwf.parse_workflow(text).step("charge")
    assert charge is not None
    assert charge.config.retries == 0  # type: ignore[attr-defined]
    assert charge.config.retry_delay == 1.0  # type: ignore[attr-defined]


def test_a_mistyped_key_names_file_line_column_step_and_suggests_the_right_one(
    tmp_path: Path,
) -> None:
    file = tmp_path / "order.yml"
    file.write_text(ORDER.replace("retry_delay: 1", "retries_delay: 1"))
    error = one_error(file)
    assert str(error).startswith(f"{file}:24:5: step 'charge': unknown key 'retries_delay'")
    assert "(did you mean 'retry_delay'?)" in str(error)
    assert "Valid keys:" in error.message


def test_an_unknown_step_type_lists_the_known_ones_with_a_suggestion() -> None:
    error = one_error(ORDER.replace("type: call", "type: cal"))
    assert (error.line, error.column) == (18, 11)
    assert error.step_id == "charge"
    assert "unknown step type 'cal' (did you mean 'call'?)" in error.message
    assert "Known types: approval, assign, call" in error.message


def test_a_wrong_type_says_what_was_expected_and_what_was_given() -> None:
    error = one_error(ORDER.replace("retries: 3", "retries: many"))
    assert error.line == 23
    assert "'retries'" in error.message
    assert "(got string 'many')" in error.message


def test_missing_required_keys_are_reported_at_their_parent() -> None:
    error = one_error("id: x\nname: X\nsteps:\n  - id: c\n    type: call\n    method: m\n")
    assert "missing required key 'service'" in error.message
    assert (error.line, error.step_id) == (4, "c")


def test_every_problem_in_a_document_is_reported_at_once() -> None:
    text = """\
id: broken
name: Broken
steps:
  - id: a
    type: assign
    sett: {x: 1}
  - id: b
    type: nope
  - type: end
  - id: d
    type: halt
    resume_step: 3
"""
    errors = errors_of(text)
    assert [e.line for e in errors] == [6, 8, 9, 12]


def test_top_level_mistakes_are_errors_with_suggestions() -> None:
    errors = errors_of("id: x\nname: X\nstep:\n  - {id: e, type: end}\n")
    assert "unknown top-level key 'step' (did you mean 'steps'?)" in errors[0].message
    assert errors[0].line == 3
    errors = errors_of("id: x\nname: X\n")
    assert any("missing required key 'steps'" in e.message for e in errors)


def test_the_header_is_type_checked() -> None:
    error = one_error("id: 123\nname: X\nsteps:\n  - {id: e, type: end}\n")
    assert "'id'" in error.message
    assert error.line == 1
    error = one_error("id: x\nname: X\ntimeout: -5\nsteps:\n  - {id: e, type: end}\n")
    assert "positive" in error.message


def test_a_document_that_is_not_a_mapping_is_one_clear_error() -> None:
    assert "must be a mapping" in one_error("- a\n- b\n").message
    assert "empty" in one_error("").message


def test_ai_keys_without_the_ai_extension_are_a_warning_and_ai_steps_an_error() -> None:
    text = """\
id: support
name: Support
agents:
  - {id: triage, model: gpt-4o-mini}
steps:
  - {id: triage, type: agent, agent_id: triage, prompt: hi, output: r}
  - {id: end, type: end}
"""
    with pytest.raises(WorkflowLoadError) as info:
        dwf.parse_workflow(text)
    errors = info.value.errors
    assert len(errors) == 1
    assert "unknown step type 'agent'" in errors[0].message
    assert 'pip install "dwf[ai]"' in errors[0].message
    warnings = [d for d in info.value.diagnostics if d.severity == "warning"]
    assert [w.line for w in warnings] == [3]
    assert "'agents' is ignored" in warnings[0].message


def test_nested_steps_are_parsed_and_located() -> None:
    text = """\
id: nested
name: Nested
steps:
  - id: each
    type: loop
    over: [1, 2]
    do:
      - id: inner
        type: assign
        set: {x: $item}
      - id: bad
        type: assign
        sett: {}
"""
    error = one_error(text)
    assert (error.line, error.step_id) == (13, "bad")


def test_a_loop_needs_exactly_one_mode() -> None:
    error = one_error("id: l\nname: L\nsteps:\n  - {id: l, type: loop, do: []}\n")
    assert "exactly one of 'over'" in error.message


def test_router_conditions_default_to_eq_and_reject_unknown_operators() -> None:
    text = """\
id: r
name: R
steps:
  - id: route
    type: router
    routes:
      - when: {field: input.x, value: 1}
        then: e
    default: e
  - {id: e, type: end}
"""
    route = dwf.parse_workflow(text).step("route")
    assert route is not None
    assert route.config.routes[0].when.op == "eq"  # type: ignore[attr-defined]
    error = one_error(text.replace("value: 1}", "op: greater, value: 1}"))
    assert "'routes.0.when.op'" in error.message
    assert error.line == 7


def test_the_parallel_wait_is_all_by_default_and_accepts_any_or_a_number() -> None:
    base = "id: p\nname: P\nsteps:\n  - id: p\n    type: parallel\n    branches: []\n"
    step = dwf.parse_workflow(base).step("p")
    assert step is not None
    assert step.config.wait == "all"  # type: ignore[attr-defined]
    for wait in ("any", "2"):
        step = dwf.parse_workflow(base + f"    wait: {wait}\n").step("p")
        assert step is not None


# --- the extension hooks ---------------------------------------------------------------------


class NotifyConfig(StepConfig):
    channel: str
    message: str = "hello"


class NotifyStep(StepType[NotifyConfig]):
    name = "notify"
    config_model = NotifyConfig

    async def execute(self, step: StepDef, ctx: Any) -> Continue:
        return Continue(output=ctx.resolve(step.config.message))  # type: ignore[attr-defined]


def test_an_extension_adds_a_step_type_and_a_top_level_key_without_touching_the_core() -> None:
    registry = default_registry()
    registry.register_step(NotifyStep)
    registry.register_top_level_key(TopLevelKey("channels", dict[str, str]))
    text = """\
id: n
name: N
channels: {ops: "#ops"}
steps:
  - {id: tell, type: notify, channel: ops, mesage: hi}
"""
    error = one_error(text, registry=registry)
    assert "unknown key 'mesage' (did you mean 'message'?)" in error.message
    workflow = dwf.parse_workflow(text.replace("mesage", "message"), registry=registry)
    assert workflow.extensions == {"channels": {"ops": "#ops"}}
    # another registry (another engine) does not see it: registries belong to instances
    assert any("unknown step type 'notify'" in e.message for e in errors_of(text))


def test_the_core_steps_are_registered_through_the_same_api() -> None:
    registry = Registry()
    assert registry.step_types == {}
    assert set(default_registry().step_types) == {
        "start", "end", "call", "assign", "router", "loop", "halt", "approval", "transform",
        "parallel", "workflow",
    }  # fmt: skip


def test_a_source_of_the_wrong_kind_is_a_clear_error() -> None:
    with pytest.raises(WorkflowLoadError, match=r"pass YAML text, a pathlib\.Path or a dict"):
        dwf.parse_workflow(42)  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "type", "next", "steps", "set", "x", "over", "do",
                                       "routes", "when", "field", "op", "then", "name"]),
                      children, max_size=5),
    max_leaves=20,
)  # fmt: skip

STEP_TYPES = sorted(default_registry().step_types)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["id", "type", "next", "set", "over", "do",
                                                 "routes", "result", "prompt", "branches",
                                                 "service", "method", "wait", "reason"]),
                                json_values | st.sampled_from(STEP_TYPES), max_size=6),
                max_size=5))  # fmt: skip
def test_random_step_lists_raise_only_dwf_errors(steps: list[dict[str, Any]]) -> None:
    document = {"id": "w", "name": "W", "steps": steps}
    with contextlib.suppress(DwfError):
        dwf.load_workflow(document)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_documents_raise_only_dwf_errors(data: st.DataObject) -> None:
    chars = list(ORDER)
    for _ in range(data.draw(st.integers(1, 5))):
        index = data.draw(st.integers(0, len(chars) - 1))
        op = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        char = data.draw(st.sampled_from(list(" :-{}[]$\n'\"#&*!|>0a")))
        if op == "delete":
            del chars[index]
        elif op == "insert":
            chars.insert(index, char)
        else:
            chars[index] = char
    with contextlib.suppress(DwfError):
        dwf.load_workflow("".join(chars))
