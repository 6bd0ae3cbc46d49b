"""Static checks of workflows (dwf.dsl.validator): every problem at once, each located."""

from __future__ import annotations

import textwrap
from typing import Any, ClassVar

import pytest

from dwf.dsl import load_workflow, parse_workflow
from dwf.dsl.model import StepDef
from dwf.dsl.validator import validate
from dwf.errors import Diagnostic, WorkflowLoadError, WorkflowValidationError
from dwf.extensions import StepConfig, StepType, default_registry

HEADER = "id: wf\nname: Workflow\n"


def check(steps: str, *, head: str = "", **kwargs: Any) -> tuple[str, list[Diagnostic]]:
    """Validate a workflow given as the YAML of its `steps` list (plus optional header keys)."""
    source = (
        HEADER + textwrap.dedent(head) + "steps:\n" + textwrap.indent(textwrap.dedent(steps), "  ")
    )
    return source, validate(parse_workflow(source, file="wf.yml"), **kwargs)


def line_of(source: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the n-th line containing `needle`."""
    lines = [n for n, text in enumerate(source.splitlines(), 1) if needle in text]
    return lines[occurrence - 1]


def errors(found: list[Diagnostic]) -> list[tuple[int | None, str]]:
    return [(d.line, d.message) for d in found if d.severity == "error"]


def warnings(found: list[Diagnostic]) -> list[tuple[int | None, str]]:
    return [(d.line, d.message) for d in found if d.severity == "warning"]


# -- structure ------------------------------------------------------------------------------


def test_a_simple_valid_workflow_has_no_diagnostics() -> None:
    _, found = check(
        """
        - id: start
          type: start
          next: greet
        - id: greet
          type: assign
          set: {greeting: "Hello $input.name at $now"}
          next: done
        - id: done
          type: end
          result: $greeting
        """
    )
    assert found == []


def test_diagnostics_carry_file_line_column_and_step() -> None:
    source, found = check(
        """
        - id: a
          type: assign
          set: {x: 1}
          next: nowhere
        """
    )
    (diagnostic,) = found
    assert diagnostic.file == "wf.yml"
    assert diagnostic.line == line_of(source, "next: nowhere")
    assert diagnostic.column == 11
    assert diagnostic.step_id == "a"
    assert str(diagnostic) == (
        f"wf.yml:{diagnostic.line}:11: step 'a': 'next' refers to unknown step 'nowhere'"
    )


def test_an_empty_step_list_is_an_error() -> None:
    source = HEADER + "steps: []\n"
    found = validate(parse_workflow(source, file="wf.yml"))
    assert errors(found) == [(3, "a workflow needs at least one step")]


def test_duplicate_step_ids_are_reported_with_the_line_of_the_first() -> None:
    source, found = check(
        """
        - id: dup
          type: assign
          set: {a: 1}
          next: dup
        - id: dup
          type: loop
          over: [1, 2]
          do:
            - id: dup
              type: assign
              set: {b: 2}
        """
    )
    first = line_of(source, "- id: dup")
    assert errors(found) == [
        (
            line_of(source, "- id: dup", 2),
            f"duplicate step id 'dup' (first defined at line {first})",
        ),
        (
            line_of(source, "- id: dup", 3),
            f"duplicate step id 'dup' (first defined at line {first})",
        ),
    ]


def test_an_unknown_next_is_an_error_that_suggests_a_close_id() -> None:
    source, found = check(
        """
        - id: fetch_order
          type: assign
          set: {a: 1}
          next: fetch_ordr
        """
    )
    assert errors(found) == [
        (
            line_of(source, "next: fetch_ordr"),
            "'next' refers to unknown step 'fetch_ordr' (did you mean 'fetch_order'?)",
        )
    ]


def test_router_routes_and_default_must_name_existing_steps() -> None:
    source, found = check(
        """
        - id: route
          type: router
          routes:
            - when: {field: input.kind, value: a}
              then: missing_route
            - when: {field: input.kind, value: b}
              then: ok
          default: missing_default
        - id: ok
          type: end
        """
    )
    assert errors(found) == [
        (
            line_of(source, "then: missing_route"),
            "'routes[0].then' refers to unknown step 'missing_route'",
        ),
        (
            line_of(source, "default: missing_default"),
            "'default' refers to unknown step 'missing_default'",
        ),
    ]


def test_on_error_and_other_targets_must_name_existing_steps() -> None:
    source, found = check(
        """
        - id: ask
          type: approval
          prompt: Ship it?
          on_reject: rejectd
          on_error: handlr
          next: rejected
        - id: rejected
          type: end
        """
    )
    assert errors(found) == [
        (
            line_of(source, "on_reject: rejectd"),
            "'on_reject' refers to unknown step 'rejectd' (did you mean 'rejected'?)",
        ),
        (line_of(source, "on_error: handlr"), "'on_error' refers to unknown step 'handlr'"),
    ]


def test_finished_is_accepted_as_the_end_everywhere() -> None:
    _, found = check(
        """
        - id: route
          type: router
          routes:
            - when: {field: input.go, op: truthy}
              then: __FINISHED__
          default: loop
        - id: loop
          type: loop
          over: [1]
          do:
            - id: inner
              type: assign
              set: {x: 1}
              next: __FINISHED__
          next: fan
        - id: fan
          type: parallel
          branches:
            - id: branch
              type: assign
              set: {y: 1}
              on_error: __FINISHED__
          next: __FINISHED__
        """
    )
    assert found == []


def test_an_unreachable_step_is_a_warning_not_an_error() -> None:
    source, found = check(
        """
        - id: a
          type: end
        - id: orphan
          type: end
        """
    )
    assert errors(found) == []
    assert warnings(found) == [(line_of(source, "id: orphan"), "unreachable: no step leads here")]


def test_an_unreachable_step_inside_a_loop_body_is_a_warning() -> None:
    source, found = check(
        """
        - id: loop
          type: loop
          over: [1, 2]
          do:
            - id: first
              type: assign
              set: {x: 1}
              next: __FINISHED__
            - id: skipped
              type: assign
              set: {y: 2}
        """
    )
    assert warnings(found) == [(line_of(source, "id: skipped"), "unreachable: no step leads here")]


def test_body_steps_without_next_continue_with_the_following_step() -> None:
    _, found = check(
        """
        - id: loop
          type: loop
          over: [1, 2]
          do:
            - id: first
              type: assign
              set: {x: $item}
            - id: wait
              type: halt
            - id: second
              type: assign
              set: {y: $x, z: $response}
        """
    )
    assert warnings(found) == []
    assert errors(found) == []


def test_a_step_reached_only_through_a_halt_resume_step_is_reachable() -> None:
    source, found = check(
        """
        - id: wait
          type: halt
          reason: Need an answer
          resume_step: answer
        - id: orphan
          type: end
        - id: answer
          type: end
          result: $response
        """
    )
    assert errors(found) == []
    assert warnings(found) == [(line_of(source, "id: orphan"), "unreachable: no step leads here")]


def test_response_is_set_after_a_halt_resumes_at_its_next() -> None:
    _, found = check(
        """
        - id: wait
          type: halt
          next: answer
        - id: answer
          type: end
          result: {text: $response, approved: $approved}
        """
    )
    assert found == []


def test_response_before_any_halt_is_an_error() -> None:
    source, found = check(
        """
        - id: early
          type: end
          result: $response
        """
    )
    assert errors(found) == [
        (line_of(source, "$response"), "'$response' is read but no step sets it before this one")
    ]


def test_a_loop_body_step_can_only_go_to_steps_of_the_same_body() -> None:
    source, found = check(
        """
        - id: loop
          type: loop
          over: [1, 2]
          do:
            - id: inner
              type: assign
              set: {x: 1}
              next: after
          next: after
        - id: after
          type: end
        """
    )
    assert errors(found) == [
        (
            line_of(source, "next: after"),
            "'next' refers to step 'after', which is in the top-level steps, not in the 'do' of "
            "step 'loop'; a step can only go to steps of its own list (leave 'next' empty to end "
            "the iteration)",
        )
    ]


def test_a_parallel_branch_is_one_step_and_cannot_jump_elsewhere() -> None:
    source, found = check(
        """
        - id: fan
          type: parallel
          branches:
            - id: a
              type: assign
              set: {x: 1}
              next: b
            - id: b
              type: assign
              set: {y: 1}
              on_error: recover
            - id: c
              type: router
              routes:
                - when: {field: input.x, op: truthy}
                  then: recover
              default: __FINISHED__
          next: recover
        - id: recover
          type: end
        """
    )
    assert errors(found) == [
        (
            line_of(source, "next: b"),
            "'next' of a parallel branch must be empty, got 'b': a branch is one step and ends "
            "after it",
        ),
        (
            line_of(source, "on_error: recover"),
            "'on_error' of a parallel branch cannot go to 'recover': a branch is one step; use "
            "'__FINISHED__' to end the branch, or put 'on_error' on the parallel step",
        ),
        (
            line_of(source, "then: recover"),
            "'routes[0].then' of a parallel branch cannot go to 'recover': a branch is one step; "
            "use '__FINISHED__' to end the branch",
        ),
    ]


def test_next_on_a_router_is_ignored_with_a_warning() -> None:
    source, found = check(
        """
        - id: route
          type: router
          default: done
          next: elsewhere
        - id: done
          type: end
        - id: elsewhere
          type: end
        """
    )
    assert warnings(found) == [
        (
            line_of(source, "next: elsewhere"),
            "'next' is ignored: router steps never continue to their 'next'",
        ),
        (line_of(source, "id: elsewhere"), "unreachable: no step leads here"),
    ]


def test_check_hook_problems_are_located_at_their_field() -> None:
    source, found = check(
        """
        - id: fan
          type: parallel
          wait: 5
          branches:
            - id: a
              type: assign
              set: {x: 1}
        """
    )
    assert errors(found) == [
        (line_of(source, "wait: 5"), "'wait: 5' must be between 1 and the number of branches")
    ]


def test_a_sub_workflow_must_be_in_the_catalog_when_one_is_given() -> None:
    steps = """
        - id: child
          type: workflow
          workflow_id: shiping
        """
    other = parse_workflow(HEADER.replace("wf", "shipping") + "steps: [{id: s, type: end}]")
    source, found = check(steps, catalog={"shipping": other, "billing": other})
    assert errors(found) == [
        (
            line_of(source, "workflow_id: shiping"),
            "unknown workflow 'shiping' (did you mean 'shipping'?); known workflows: billing, "
            "shipping",
        )
    ]
    _, without_catalog = check(steps)
    assert without_catalog == []


# -- variables ------------------------------------------------------------------------------


def test_loop_variables_are_valid_inside_the_body_but_not_after_the_loop() -> None:
    source, found = check(
        """
        - id: invite
          type: loop
          over: $input.recipients
          as: recipient
          index_as: idx
          output: invites
          do:
            - id: send
              type: assign
              set: {last: "$recipient.id #$idx"}
          next: after
        - id: after
          type: end
          result: {who: $recipient.id, all: $invites}
        """
    )
    assert errors(found) == [
        (
            line_of(source, "who: $recipient.id"),
            "'$recipient' is read but no step sets it before this one; it is only set inside "
            "the 'do' of step 'invite'",
        )
    ]


def test_earlier_body_step_outputs_are_visible_to_later_body_steps() -> None:
    _, found = check(
        """
        - id: loop
          type: loop
          over: $input.orders
          do:
            - id: price
              type: assign
              set: {price: $item.price}
              next: tax
            - id: tax
              type: assign
              set: {tax: $price, at: $index}
        """
    )
    assert found == []


def test_a_later_body_step_output_read_earlier_in_the_body_is_only_possibly_set() -> None:
    source, found = check(
        """
        - id: loop
          type: loop
          over: $input.orders
          do:
            - id: first
              type: assign
              set: {seen: $previous}
              next: second
            - id: second
              type: assign
              set: {previous: $item}
        """
    )
    assert warnings(found) == [
        (
            line_of(source, "$previous"),
            "'$previous' may not be set on every path to this step (it reads as null there)",
        )
    ]


def test_body_variables_may_be_unset_after_the_loop_because_it_can_run_zero_times() -> None:
    source, found = check(
        """
        - id: loop
          type: loop
          over: $input.orders
          do:
            - id: inner
              type: assign
              set: {last_order: $item}
          next: after
        - id: after
          type: end
          result: $last_order
        """
    )
    assert errors(found) == []
    assert warnings(found) == [
        (
            line_of(source, "result: $last_order"),
            "'$last_order' may not be set on every path to this step (it reads as null there)",
        )
    ]


def test_while_loop_bodies_see_iteration_and_break_loop_but_not_item() -> None:
    source, found = check(
        """
        - id: poll
          type: loop
          while: {field: done, op: falsy}
          do:
            - id: check
              type: assign
              set: {done: $break_loop, attempt: $iteration, x: $item}
        """
    )
    assert errors(found) == [
        (line_of(source, "$item"), "'$item' is read but no step sets it before this one")
    ]
    # The condition is evaluated before the first iteration, so `done` may be unset there.
    assert warnings(found) == [
        (
            line_of(source, "field: done"),
            "'$done' may not be set on every path to this step (it reads as null there)",
        )
    ]


def test_parallel_branch_outputs_are_set_after_a_parallel_that_waits_for_all() -> None:
    source, found = check(
        """
        - id: fetch
          type: parallel
          output: both
          branches:
            - id: user
              type: call
              service: users
              method: get
              output: user
            - id: orders
              type: call
              service: orders
              method: list
              input: {user: $user}
          next: merge
        - id: merge
          type: end
          result: {user: $user, orders: $both}
        """
    )
    # Branches run on their own copies: one branch does not see another's output.
    assert errors(found) == [
        (
            line_of(source, "input: {user: $user}"),
            "'$user' is read but no step sets it before this one",
        )
    ]
    assert warnings(found) == []


def test_parallel_branch_outputs_may_be_unset_after_wait_any() -> None:
    source, found = check(
        """
        - id: race
          type: parallel
          wait: any
          branches:
            - id: fast
              type: assign
              set: {answer: 1}
            - id: slow
              type: assign
              set: {answer: 2, slow_only: true}
          next: use
        - id: use
          type: end
          result: $slow_only
        """
    )
    assert warnings(found) == [
        (
            line_of(source, "result: $slow_only"),
            "'$slow_only' may not be set on every path to this step (it reads as null there)",
        )
    ]


def test_an_on_error_handler_sees_last_error_but_not_the_failing_step_output() -> None:
    source, found = check(
        """
        - id: charge
          type: call
          service: payments
          method: charge
          output: receipt
          on_error: failed
          next: done
        - id: done
          type: end
          result: $receipt
        - id: failed
          type: end
          result: {error: $_last_error.message, receipt: $receipt}
        """
    )
    assert errors(found) == [
        (
            line_of(source, "receipt: $receipt"),
            "'$receipt' is read but no step sets it before this one",
        )
    ]
    assert warnings(found) == []


def test_last_error_outside_an_on_error_handler_is_an_error() -> None:
    source, found = check(
        """
        - id: charge
          type: call
          service: payments
          method: charge
          on_error: handler
          next: done
        - id: handler
          type: assign
          set: {reason: $_last_error.message}
          next: done
        - id: done
          type: end
          result: $_last_error
        """
    )
    assert errors(found) == [
        (
            line_of(source, "result: $_last_error"),
            "'$_last_error' is only set for the step an 'on_error' goes to, and this step is "
            "never reached that way",
        )
    ]


def test_a_variable_set_on_some_router_branches_only_may_be_unset() -> None:
    source, found = check(
        """
        - id: route
          type: router
          routes:
            - when: {field: $input.operation, value: add}
              then: add
            - when: {field: $input.operation, value: subtract}
              then: subtract
          default: unknown
        - id: add
          type: call
          service: calculator
          method: add
          input: {a: $input.a, b: $input.b}
          output: result_value
          next: respond
        - id: subtract
          type: call
          service: calculator
          method: subtract
          input: {a: $input.a, b: $input.b}
          output: result_value
          next: respond
        - id: unknown
          type: assign
          set: {error: unsupported operation}
          next: respond
        - id: respond
          type: end
          result: {value: $result_value, error: $error}
        """
    )
    line = line_of(source, "value: $result_value")
    assert errors(found) == []
    assert warnings(found) == [
        (
            line,
            "'$result_value' may not be set on every path to this step (it reads as null there)",
        ),
        (line, "'$error' may not be set on every path to this step (it reads as null there)"),
    ]


def test_a_variable_set_on_every_branch_is_definitely_set() -> None:
    _, found = check(
        """
        - id: route
          type: router
          routes:
            - when: {field: input.vip, op: truthy}
              then: vip
          default: normal
        - id: vip
          type: assign
          set: {discount: 20}
          next: total
        - id: normal
          type: assign
          set: {discount: 0}
          next: total
        - id: total
          type: end
          result: $discount
        """
    )
    assert found == []


def test_a_retry_cycle_is_analysed_without_false_alarms() -> None:
    source, found = check(
        """
        - id: init
          type: assign
          set: {attempts: 0}
          next: attempt
        - id: attempt
          type: call
          service: payments
          method: charge
          input: {try: $attempts}
          output: receipt
          on_error: note_failure
          next: done
        - id: note_failure
          type: assign
          set: {attempts: 1, reason: $_last_error.message}
          next: again
        - id: again
          type: router
          routes:
            - when: {field: attempts, op: lt, value: 3}
              then: attempt
          default: give_up
        - id: give_up
          type: end
          result: {reason: $reason, receipt: $receipt}
        - id: done
          type: end
          result: {receipt: $receipt, reason: $reason}
        """
    )
    assert errors(found) == [
        (
            line_of(source, "result: {reason: $reason, receipt: $receipt}"),
            "'$receipt' is read but no step sets it before this one",
        )
    ]
    assert warnings(found) == [
        (
            line_of(source, "result: {receipt: $receipt, reason: $reason}"),
            "'$reason' may not be set on every path to this step (it reads as null there)",
        )
    ]


def test_steps_nested_in_branches_and_bodies_are_analysed_recursively() -> None:
    source, found = check(
        """
        - id: prepare
          type: assign
          set: {rate: 2}
          next: fan
        - id: fan
          type: parallel
          branches:
            - id: per_item
              type: loop
              over: $input.items
              do:
                - id: scale
                  type: assign
                  set: {scaled: "$item $rate"}
                  next: use
                - id: use
                  type: assign
                  set: {total: $scaled, oops: $scaeld}
        """
    )
    assert errors(found) == [
        (
            line_of(source, "$scaeld"),
            "'$scaeld' is read but no step sets it before this one (did you mean 'scaled'?)",
        )
    ]


def test_a_misspelt_variable_is_an_error_that_suggests_the_right_name() -> None:
    source, found = check(
        """
        - id: fetch
          type: call
          service: orders
          method: get
          output: order_details
          next: done
        - id: done
          type: end
          result: $order_detials.total
        """
    )
    assert errors(found) == [
        (
            line_of(source, "$order_detials"),
            "'$order_detials' is read but no step sets it before this one (did you mean "
            "'order_details'?)",
        )
    ]


def test_a_declared_input_used_as_a_bare_variable_is_an_error() -> None:
    source, found = check(
        """
        - id: fetch
          type: call
          service: orders
          method: get
          input: {id: $order_id}
        """,
        head="inputs:\n  order_id: {type: string}\n",
    )
    assert errors(found) == [
        (
            line_of(source, "$order_id"),
            "'$order_id' reads a variable, but 'order_id' is a declared input; use "
            "'$input.order_id'",
        )
    ]


def test_references_without_dollar_in_router_fields_are_checked() -> None:
    source, found = check(
        """
        - id: route
          type: router
          routes:
            - when: {field: stauts, value: open}
              then: done
          default: done
        - id: done
          type: end
        """
    )
    assert errors(found) == [
        (line_of(source, "field: stauts"), "'$stauts' is read but no step sets it before this one")
    ]


def test_now_and_history_have_no_fields() -> None:
    source, found = check(
        """
        - id: stamp
          type: assign
          set: {year: $now.year, when: $now, log: $history, first: $history.0}
        """
    )
    line = line_of(source, "$now.year")
    assert errors(found) == [
        (line, "'$now.year': '$now' has no fields; use '$now' on its own"),
        (line, "'$history.0': '$history' has no fields; use '$history' on its own"),
    ]


def test_a_path_outside_the_output_schema_is_an_error() -> None:
    source, found = check(
        """
        - id: fetch
          type: call
          service: users
          method: get
          output:
            key: user
            schema:
              type: object
              properties:
                name: {type: string}
                address:
                  type: object
                  properties: {city: {type: string}}
                tags:
                  type: array
                  items: {type: object, properties: {label: {type: string}}}
          next: done
        - id: done
          type: end
          result:
            ok: [$user.name, $user.address.city, $user.tags.0.label]
            bad: $user.adress.city
            deep: $user.address.zip
            item: $user.tags.0.colour
        """
    )
    assert errors(found) == [
        (
            line_of(source, "bad: $user.adress.city"),
            "'$user.adress.city' — 'adress' is not in the output schema of step 'fetch' "
            "(available: name, address, tags)",
        ),
        (
            line_of(source, "deep: $user.address.zip"),
            "'$user.address.zip' — 'zip' is not in the output schema of step 'fetch' "
            "(available: city)",
        ),
        (
            line_of(source, "item: $user.tags.0.colour"),
            "'$user.tags.0.colour' — 'colour' is not in the output schema of step 'fetch' "
            "(available: label)",
        ),
    ]


@pytest.mark.parametrize(
    "schema",
    [
        "{type: object}",
        "{type: object, additionalProperties: true, properties: {a: {type: string}}}",
    ],
)
def test_schemas_without_closed_properties_are_not_checked(schema: str) -> None:
    _, found = check(
        f"""
        - id: fetch
          type: call
          service: s
          method: m
          output: {{key: out, schema: {schema}}}
          next: done
        - id: done
          type: end
          result: $out.anything.below
        """
    )
    assert found == []


def test_a_variable_set_by_a_step_without_schema_too_is_not_schema_checked() -> None:
    _, found = check(
        """
        - id: fetch
          type: call
          service: s
          method: m
          output: {key: out, schema: {type: object, properties: {a: {type: string}}}}
          next: fallback
        - id: fallback
          type: assign
          set: {out: {b: 1}}
          next: done
        - id: done
          type: end
          result: $out.b
        """
    )
    assert found == []


# -- extensions, loading, size -------------------------------------------------------------


class NotifyConfig(StepConfig):
    channel: str
    message: str
    on_bounce: str | None = None


class NotifyStep(StepType[NotifyConfig]):
    name = "notify"
    config_model = NotifyConfig
    nested_fields: ClassVar[tuple[str, ...]] = ()

    def targets(self, step: StepDef) -> list[tuple[str, str]]:
        config: NotifyConfig = step.config  # type: ignore[assignment]
        return [("on_bounce", config.on_bounce)] if config.on_bounce else []

    def outputs(self, step: StepDef) -> list[str]:
        return ["receipt_id"]


def test_extension_step_types_are_validated_through_their_hooks() -> None:
    registry = default_registry()
    registry.register_step(NotifyStep)
    source = HEADER + textwrap.dedent(
        """\
        steps:
          - id: notify
            type: notify
            channel: email
            message: "Hi $input.name, ref $reciept_id"
            on_bounce: bounced
            next: done
          - id: bounced
            type: end
          - id: done
            type: end
            result: $receipt_id
        """
    )
    definition = parse_workflow(source, registry=registry)
    assert errors(validate(definition, registry=registry)) == [
        (
            line_of(source, "$reciept_id"),
            "'$reciept_id' is read but no step sets it before this one (did you mean "
            "'receipt_id'?)",
        )
    ]
    # Validated with a registry that lacks the type, the step is reported, not skipped.
    (unknown,) = [d for d in validate(definition) if "step type" in d.message]
    assert unknown.line == line_of(source, "type: notify")
    assert unknown.message.startswith("unknown step type 'notify'. Known types: ")


def test_load_workflow_raises_every_error_and_keeps_warnings() -> None:
    source = HEADER + textwrap.dedent(
        """\
        steps:
          - id: a
            type: assign
            set: {x: $missing}
            next: nowhere
          - id: orphan
            type: end
        """
    )
    with pytest.raises((WorkflowLoadError, WorkflowValidationError)) as raised:
        load_workflow(source, file="wf.yml")
    assert [d.message for d in raised.value.errors] == [
        "'$missing' is read but no step sets it before this one",
        "'next' refers to unknown step 'nowhere'",
    ]
    fixed = source.replace("$missing", "1").replace("nowhere", "__FINISHED__")
    definition = load_workflow(fixed, file="wf.yml")
    assert [d.message for d in definition.warnings] == ["unreachable: no step leads here"]


def test_workflows_given_as_dicts_are_validated_without_lines() -> None:
    definition = parse_workflow(
        {"id": "wf", "name": "W", "steps": [{"id": "a", "type": "end", "result": "$nope"}]}
    )
    (diagnostic,) = validate(definition)
    assert (diagnostic.line, diagnostic.step_id) == (None, "a")
    assert diagnostic.message == "'$nope' is read but no step sets it before this one"


@pytest.mark.parametrize("retry_loops", [False, True])
def test_a_2000_step_workflow_of_branching_routers_validates_in_linear_time(
    retry_loops: bool,
) -> None:
    # Each router branches to the next two steps: the number of paths grows like Fibonacci(2000),
    # so any per-path walk would never finish. Variables are set on some paths only. With
    # retry loops, every fifth router goes back ten steps instead (chained cycles).
    count = 2000
    steps: list[dict[str, Any]] = []
    for i in range(count):
        after = [f"s{j}" if j < count else "__FINISHED__" for j in (i + 1, i + 2)]
        if retry_loops and i % 10 == 0 and i >= 10:
            after[1] = f"s{i - 10}"
        if i % 2 == 0:
            route = {"when": {"field": "$input.flag", "op": "truthy"}, "then": after[0]}
            steps.append({"id": f"s{i}", "type": "router", "routes": [route], "default": after[1]})
        else:
            values = {f"v{i}": i, "last": f"$v{i - 2}" if i > 2 else 0}
            steps.append({"id": f"s{i}", "type": "assign", "set": values, "next": after[0]})
    definition = parse_workflow({"id": "big", "name": "Big", "steps": steps})
    found = validate(definition)
    assert errors(found) == []
    assert {message.split("'")[2] for _, message in warnings(found)} == {
        " may not be set on every path to this step (it reads as null there)"
    }
    if not retry_loops:  # every odd step but the first reads a variable some paths skip
        assert len(warnings(found)) == count // 2 - 1
