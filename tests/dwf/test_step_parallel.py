"""The ``parallel`` step: concurrency, wait modes, merging, failures and halts in branches."""

from __future__ import annotations

import asyncio
import textwrap
from collections import defaultdict
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


class Branches:
    """Async services whose interleaving shows what ran concurrently."""

    def __init__(self) -> None:
        self.events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.log: list[str] = []
        self.cancelled: list[str] = []

    async def wait_for(self, name: str, then: Any = None) -> Any:
        """Finish only after ``signal(name)``: impossible unless the branches run together."""
        self.log.append(f"wait {name}")
        try:
            await asyncio.wait_for(self.events[name].wait(), timeout=5)
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        self.log.append(f"got {name}")
        return then

    async def signal(self, name: str, then: Any = None) -> Any:
        self.log.append(f"signal {name}")
        self.events[name].set()
        return then

    async def value(self, value: Any) -> Any:
        self.log.append(f"value {value}")
        return value

    async def hang(self, name: str) -> None:
        self.log.append(f"hang {name}")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise

    async def fail(self, message: str) -> None:
        self.log.append(f"fail {message}")
        raise RuntimeError(message)


@pytest.fixture
def svc() -> Branches:
    return Branches()


@pytest.fixture
def engine(svc: Branches) -> dwf.Engine:
    return dwf.Engine("memory://", services={"B": svc})


def parallel(branches: str, wait: str = "all", before: str = "{}") -> dwf.WorkflowDefinition:
    """A workflow: assign ``before``, run the branches, end with every variable."""
    return workflow(f"""
        steps:
          - id: set
            type: assign
            set: {before}
            next: par
          - id: par
            type: parallel
            wait: {wait}
            output: results
            next: finish
            branches:
{textwrap.indent(textwrap.dedent(branches), " " * 14)}
          - id: finish
            type: end
        """)


# ------------------------------------------------------------------------------- concurrency


async def test_branches_run_concurrently(engine: dwf.Engine, svc: Branches) -> None:
    # the first branch can only finish once the second has run
    wf = parallel("""
        - id: first
          type: call
          service: B
          method: wait_for
          input: {name: second_ran, then: A}
        - id: second
          type: call
          service: B
          method: signal
          input: {name: second_ran, then: B}
        """)
    result = await engine.run(wf)
    assert result.status == "completed"
    assert result.output["results"] == ["A", "B"]
    assert svc.log == ["wait second_ran", "signal second_ran", "got second_ran"]


async def test_results_are_in_branch_order_and_branches_have_their_own_entries(
    engine: dwf.Engine,
) -> None:
    wf = parallel("""
        - id: slow
          type: call
          service: B
          method: wait_for
          input: {name: fast_done, then: slow}
        - id: fast
          type: call
          service: B
          method: signal
          input: {name: fast_done, then: fast}
        """)
    result = await engine.run(wf)
    assert result.output["results"] == ["slow", "fast"]
    entries = await engine.entries(result.execution_id)
    assert [(e.step_path, e.action) for e in entries] == [
        ("set", "completed"),
        ("par/fast", "completed"),
        ("par/slow", "completed"),
        ("par", "completed"),
        ("finish", "completed"),
    ]
    assert entries[3].output == ["slow", "fast"]


async def test_a_parallel_without_branches_completes_with_no_results(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: par
            type: parallel
            output: results
            next: finish
          - id: finish
            type: end
            result: $results
        """)
    assert (await engine.run(wf)).output == []


# -------------------------------------------------------------------------------- wait modes


async def test_wait_any_completes_with_the_first_branch_and_cancels_the_rest(
    engine: dwf.Engine, svc: Branches
) -> None:
    wf = parallel(
        """
        - id: stuck
          type: call
          service: B
          method: hang
          input: stuck
        - id: quick
          type: call
          service: B
          method: value
          input: quick
        """,
        wait="any",
    )
    result = await engine.run(wf)
    assert result.status == "completed"
    assert result.output["results"] == [None, "quick"]
    assert svc.cancelled == ["stuck"]


async def test_wait_n_completes_with_n_branches_and_cancels_the_rest(
    engine: dwf.Engine, svc: Branches
) -> None:
    wf = parallel(
        """
        - id: a
          type: call
          service: B
          method: value
          input: a
        - id: b
          type: call
          service: B
          method: hang
          input: b
        - id: c
          type: call
          service: B
          method: value
          input: c
        """,
        wait="2",
    )
    result = await engine.run(wf)
    assert result.output["results"] == ["a", None, "c"]
    assert svc.cancelled == ["b"]


async def test_wait_all_waits_for_every_branch(engine: dwf.Engine, svc: Branches) -> None:
    wf = parallel("""
        - id: a
          type: call
          service: B
          method: value
          input: a
        - id: b
          type: call
          service: B
          method: wait_for
          input: {name: c_done, then: b}
        - id: c
          type: call
          service: B
          method: signal
          input: {name: c_done, then: c}
        """)
    result = await engine.run(wf)
    assert result.output["results"] == ["a", "b", "c"]
    assert svc.cancelled == []


# ------------------------------------------------------------------------------------- merge


async def test_each_branch_changes_are_merged(engine: dwf.Engine) -> None:
    wf = parallel(
        """
        - id: a
          type: assign
          set: {x: 1}
        - id: b
          type: assign
          set: {y: 2}
        """,
        before="{keep: 0}",
    )
    result = await engine.run(wf)
    assert result.output == {
        "keep": 0,
        "x": 1,
        "y": 2,
        "results": [{"x": 1}, {"y": 2}],
    }


async def test_a_branch_that_does_not_touch_a_variable_never_overwrites_it(
    engine: dwf.Engine,
) -> None:
    # the original merged whole copies, so `b` put back the old counter (defect 39)
    wf = parallel(
        """
        - id: a
          type: assign
          set: {counter: 1}
        - id: b
          type: assign
          set: {seen: $counter}
        """,
        before="{counter: 0}",
    )
    result = await engine.run(wf)
    assert result.output["counter"] == 1
    assert result.output["seen"] == 0  # each branch reads the variables as they were before


async def test_a_later_branch_in_list_order_wins_a_conflict_even_if_it_finished_first(
    engine: dwf.Engine, svc: Branches
) -> None:
    wf = parallel("""
        - id: early
          type: call
          service: B
          method: signal
          input: {name: early_done, then: early}
          output: winner
        - id: late
          type: call
          service: B
          method: wait_for
          input: {name: early_done, then: late}
          output: winner
        """)
    result = await engine.run(wf)
    assert svc.log[-1] == "got early_done"  # `late` finished last
    assert result.output["winner"] == "late"

    reversed_wf = parallel("""
        - id: late
          type: call
          service: B
          method: wait_for
          input: {name: second_done, then: late}
          output: winner
        - id: early
          type: call
          service: B
          method: signal
          input: {name: second_done, then: early}
          output: winner
        """)
    result = await engine.run(reversed_wf)
    assert result.output["winner"] == "early"  # `early` is later in the list


async def test_branches_do_not_see_each_other_writes(engine: dwf.Engine, svc: Branches) -> None:
    wf = parallel(
        """
        - id: writer
          type: assign
          set: {shared: written}
        - id: reader
          type: call
          service: B
          method: value
          input: $shared
        """,
        before="{shared: original}",
    )
    result = await engine.run(wf)
    assert result.output["results"] == [{"shared": "written"}, "original"]
    assert result.output["shared"] == "written"


async def test_the_writes_of_a_cancelled_branch_are_not_merged(
    engine: dwf.Engine, svc: Branches
) -> None:
    wf = parallel(
        """
        - id: steps
          type: loop
          over: [1, 2]
          do:
            - id: write
              type: assign
              set: {partial: $item}
            - id: second
              type: router
              routes:
                - when: {field: item, op: eq, value: 2}
                  then: stuck
              default: __FINISHED__
            - id: stuck
              type: call
              service: B
              method: wait_for
              input: {name: never}
        - id: quick
          type: call
          service: B
          method: signal
          input: {name: unrelated, then: quick}
        """,
        wait="any",
    )
    result = await engine.run(wf)
    assert result.output == {"results": [None, "quick"]}
    assert svc.cancelled == ["never"]


# ---------------------------------------------------------------------------------- failures


async def test_with_wait_all_a_failing_branch_fails_the_step_and_cancels_the_rest(
    engine: dwf.Engine, svc: Branches
) -> None:
    wf = parallel("""
        - id: stuck
          type: call
          service: B
          method: hang
          input: stuck
        - id: broken
          type: call
          service: B
          method: fail
          input: out of stock
        """)
    result = await engine.run(wf)
    assert result.status == "failed"
    assert result.error["step"] == "par"
    assert "branch 'broken': out of stock" in result.error["message"]
    assert svc.cancelled == ["stuck"]
    failed = [e for e in await engine.entries(result.execution_id) if e.action == "failed"]
    assert [e.step_path for e in failed] == ["par/broken", "par"]


async def test_a_failing_parallel_can_be_handled_by_on_error(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: par
            type: parallel
            on_error: handler
            branches:
              - id: ok
                type: assign
                set: {x: 1}
              - id: broken
                type: call
                service: B
                method: fail
                input: boom
          - id: handler
            type: end
            result: {x: $x, error: $_last_error.step}
        """)
    result = await engine.run(wf)
    # nothing of a failed parallel step is merged
    assert result.output == {"x": None, "error": "par"}


async def test_with_wait_any_a_failing_branch_is_tolerated(
    engine: dwf.Engine, svc: Branches
) -> None:
    wf = parallel(
        """
        - id: broken
          type: call
          service: B
          method: fail
          input: boom
        - id: ok
          type: call
          service: B
          method: value
          input: ok
          output: got
        """,
        wait="any",
    )
    result = await engine.run(wf)
    assert result.status == "completed"
    assert result.output["results"] == [None, "ok"]
    assert result.output["got"] == "ok"


async def test_too_few_completions_for_wait_n_fails_the_step(engine: dwf.Engine) -> None:
    wf = parallel(
        """
        - id: a
          type: call
          service: B
          method: fail
          input: a broke
        - id: b
          type: call
          service: B
          method: value
          input: b
        - id: c
          type: call
          service: B
          method: fail
          input: c broke
        """,
        wait="2",
    )
    result = await engine.run(wf)
    assert result.status == "failed"
    message = result.error["message"]
    assert "1 of 3 branches completed, 2 required" in message
    assert "branch 'a': a broke" in message
    assert "branch 'c': c broke" in message


async def test_when_every_branch_fails_wait_any_fails(engine: dwf.Engine) -> None:
    wf = parallel(
        """
        - id: a
          type: call
          service: B
          method: fail
          input: no
        """,
        wait="any",
    )
    result = await engine.run(wf)
    assert result.status == "failed"
    assert "0 of 1 branches completed, 1 required" in result.error["message"]


# ------------------------------------------------------------------------------------- halts


async def test_a_halt_inside_a_branch_halts_the_run_and_resumes_into_the_branch(
    engine: dwf.Engine, svc: Branches
) -> None:
    wf = parallel("""
        - id: compute
          type: call
          service: B
          method: value
          input: computed
          output: computed
        - id: ask
          type: halt
          reason: Need a number
        """)
    result = await engine.run(wf)
    # the original swallowed this halt and carried on (defect 39)
    assert result.status == "halted"
    assert result.halt["path"] == "par/ask"
    assert result.halt["prompt"] == "Need a number"

    result = await engine.resume(result.execution_id, response=42)
    assert result.status == "completed"
    assert result.output["computed"] == "computed"
    assert result.output["response"] == 42
    assert result.output["results"] == ["computed", None]
    # the completed branch was not run again on resume
    assert svc.log == ["value computed"]


async def test_approvals_in_two_branches_are_answered_one_after_the_other(
    engine: dwf.Engine,
) -> None:
    wf = parallel("""
        - id: legal
          type: approval
          prompt: Legal OK?
        - id: finance
          type: approval
          prompt: Finance OK?
        """)
    result = await engine.run(wf)
    first = result.halt["prompt"]
    result = await engine.resume(result.execution_id, approved=True)
    assert result.status == "halted"
    second = result.halt["prompt"]
    assert {first, second} == {"Legal OK?", "Finance OK?"}
    result = await engine.resume(result.execution_id, approved=True)
    assert result.status == "completed"
    assert [r["approved"] for r in result.output["results"]] == [True, True]


async def test_a_halted_branch_does_not_block_wait_any(engine: dwf.Engine) -> None:
    wf = parallel(
        """
        - id: ask
          type: halt
          reason: maybe later
        - id: quick
          type: call
          service: B
          method: value
          input: quick
        """,
        wait="any",
    )
    result = await engine.run(wf)
    assert result.status == "completed"
    assert result.output["results"] == [None, "quick"]


async def test_a_branch_halt_resumes_in_a_new_process_without_rerunning_branches(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    wf = parallel("""
        - id: compute
          type: call
          service: B
          method: value
          input: computed
          output: computed
        - id: ask
          type: halt
          reason: Need a number
        """)
    first_svc, second_svc = Branches(), Branches()
    first = dwf.Engine(url, services={"B": first_svc})
    try:
        result = await first.run(wf)
    finally:
        await first.close()
    second = dwf.Engine(url, services={"B": second_svc})
    try:
        result = await second.resume(result.execution_id, response="n")
    finally:
        await second.close()
    assert result.output["computed"] == "computed"
    assert result.output["response"] == "n"
    assert first_svc.log == ["value computed"]
    assert second_svc.log == []


async def test_with_wait_all_a_failure_is_not_hidden_behind_a_halt(
    engine: dwf.Engine, svc: Branches
) -> None:
    wf = parallel("""
        - id: ask
          type: halt
          reason: Anything to add?
        - id: broken
          type: call
          service: B
          method: fail
          input: out of stock
        """)
    result = await engine.run(wf)
    # nobody is asked a question about a step that has already failed
    assert result.status == "failed"
    assert "branch 'broken': out of stock" in result.error["message"]


async def test_with_wait_n_a_halt_is_kept_when_answering_can_still_complete_the_step(
    engine: dwf.Engine,
) -> None:
    wf = parallel(
        """
        - id: ask
          type: halt
          reason: Anything to add?
        - id: broken
          type: call
          service: B
          method: fail
          input: out of stock
        - id: ok
          type: call
          service: B
          method: value
          input: ok
        """,
        wait="2",
    )
    result = await engine.run(wf)
    assert result.status == "halted"
    result = await engine.resume(result.execution_id, response="no")
    assert result.status == "completed"
    assert result.output["results"][2] == "ok"


async def test_a_halt_in_a_loop_inside_a_branch_resumes_at_its_iteration(
    engine: dwf.Engine, svc: Branches
) -> None:
    wf = parallel("""
        - id: each
          type: loop
          over: [1, 2]
          output: answers
          do:
            - id: ask
              type: halt
              reason: "Question $item"
            - id: keep
              type: call
              service: B
              method: value
              input: "$item=$response"
        - id: other
          type: call
          service: B
          method: value
          input: other
        """)
    result = await engine.run(wf)
    assert result.halt["path"] == "par/each[0]/ask"
    result = await engine.resume(result.execution_id, response="a")
    assert result.halt["path"] == "par/each[1]/ask"
    result = await engine.resume(result.execution_id, response="b")
    assert result.status == "completed"
    assert result.output["answers"] == ["1=a", "2=b"]
    assert svc.log == ["value other", "value 1=a", "value 2=b"]
