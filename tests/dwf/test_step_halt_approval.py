"""The ``halt`` and ``approval`` steps: halting, resuming, deciding and timing out."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

import dwf

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class Clock:
    """A settable clock for Engine(clock=...)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def workflow(text: str) -> dwf.WorkflowDefinition:
    """Parse a workflow; ``id`` and ``name`` are added when the text has none."""
    text = textwrap.dedent(text)
    if not text.lstrip().startswith("id:"):
        text = "id: test\nname: Test\n" + text
    return dwf.parse_workflow(text)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> dwf.Engine:
    return dwf.Engine("memory://", clock=clock)


# ----------------------------------------------------------------------------------------- halt


HALT = """
    steps:
      - id: set
        type: assign
        set: {user: ann}
        next: wait
      - id: wait
        type: halt
        reason: "Waiting for $user"
        data: {user_id: 123, who: $user}
        next: finish
      - id: finish
        type: end
        result: {response: $response, approved: $approved}
    """


async def test_halt_returns_its_reason_data_and_time(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(HALT))
    assert result.status == "halted"
    assert result.halt == {
        "path": "wait",
        "step": "wait",
        "prompt": "Waiting for ann",
        "data": {
            "user_id": 123,
            "who": "ann",
            "reason": "Waiting for ann",
            "halted_at": iso(T0),
        },
        "expires_at": None,
    }
    record = await engine.get(result.execution_id)
    assert record.status == dwf.Status.HALTED
    assert record.halt == result.halt


async def test_halt_without_a_reason_says_halted_and_has_no_prompt(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: wait
            type: halt
        """)
    result = await engine.run(wf)
    assert result.halt["data"] == {"reason": "Halted", "halted_at": iso(T0)}
    assert result.halt["prompt"] is None


async def test_halt_data_cannot_override_reason_or_halted_at(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: wait
            type: halt
            reason: real
            data: {reason: fake, halted_at: yesterday, extra: kept}
        """)
    result = await engine.run(wf)
    assert result.halt["data"] == {"reason": "real", "halted_at": iso(T0), "extra": "kept"}


async def test_halt_records_a_halted_entry_with_its_data(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(HALT))
    entries = await engine.entries(result.execution_id)
    assert [(e.step_id, e.action) for e in entries] == [("set", "completed"), ("wait", "halted")]
    assert entries[-1].output["who"] == "ann"


async def test_resume_continues_at_next_with_the_response(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(HALT))
    result = await engine.resume(result.execution_id, response={"answer": [1, 2]})
    assert result.status == "completed"
    assert result.output == {"response": {"answer": [1, 2]}, "approved": None}


async def test_resume_of_a_plain_halt_exposes_approved_too(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(HALT))
    result = await engine.resume(result.execution_id, approved=False, response="")
    assert result.output == {"response": "", "approved": False}


async def test_resume_step_chooses_where_to_continue(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: wait
            type: halt
            resume_step: chosen
            next: not_this
          - id: not_this
            type: end
            result: next
          - id: chosen
            type: end
            result: "resumed with $response"
        """)
    result = await engine.run(wf)
    result = await engine.resume(result.execution_id, response="hi")
    assert result.output == "resumed with hi"


async def test_a_halt_without_next_ends_the_workflow_cleanly_on_resume(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: set
            type: assign
            set: {x: 1}
            next: wait
          - id: wait
            type: halt
            reason: last words
        """)
    result = await engine.run(wf)
    assert result.status == "halted"
    result = await engine.resume(result.execution_id, response="bye")
    # the original halted again forever here (defect 26)
    assert (result.status, result.output) == ("completed", None)
    record = await engine.get(result.execution_id)
    assert record.variables == {"x": 1, "response": "bye"}


async def test_resume_is_recorded_in_the_timeline(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(HALT))
    result = await engine.resume(result.execution_id, response="ok", by="bob")
    entries = await engine.entries(result.execution_id)
    assert [(e.step_path, e.action) for e in entries] == [
        ("set", "completed"),
        ("wait", "halted"),
        ("wait", "resumed"),
        ("finish", "completed"),
    ]
    assert entries[2].output == {"approved": None, "response": "ok", "by": "bob"}


async def test_a_halted_execution_can_be_resumed_only_once(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(HALT))
    await engine.resume(result.execution_id, response="first")
    with pytest.raises(dwf.InvalidTransition, match="only halted executions"):
        await engine.resume(result.execution_id, response="second")


async def test_a_halt_resumes_from_sqlite_in_a_new_engine(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    first = dwf.Engine(url)
    try:
        result = await first.run(workflow(HALT))
    finally:
        await first.close()
    second = dwf.Engine(url)
    try:
        result = await second.resume(result.execution_id, response="later")
    finally:
        await second.close()
    assert result.output == {"response": "later", "approved": None}


# ------------------------------------------------------------------------------------- approval


APPROVAL = """
    steps:
      - id: set
        type: assign
        set: {amount: 250}
        next: approve
      - id: approve
        type: approval
        prompt: "Approve $amount EUR?"
        context: {amount: $amount}
        approvers: [alice, bob]
        on_reject: rejected
        next: approved
      - id: approved
        type: end
        result: approved
      - id: rejected
        type: end
        result: rejected
    """


async def test_approval_halts_with_its_request(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(APPROVAL))
    assert result.status == "halted"
    assert result.halt["prompt"] == "Approve 250 EUR?"
    assert result.halt["path"] == "approve"
    assert result.halt["data"] == {
        "type": "approval",
        "prompt": "Approve 250 EUR?",
        "context": {"amount": 250},
        "approvers": ["alice", "bob"],
        "timeout": None,
        "requested_at": iso(T0),
        "expires_at": None,
    }


async def test_approving_continues_to_next(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(APPROVAL))
    result = await engine.resume(result.execution_id, approved=True)
    assert (result.status, result.output) == ("completed", "approved")


async def test_rejecting_continues_to_on_reject(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(APPROVAL))
    result = await engine.resume(result.execution_id, approved=False)
    assert (result.status, result.output) == ("completed", "rejected")


async def test_rejecting_without_on_reject_fails_the_run(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: approve
            type: approval
            prompt: Go?
            next: done
          - id: done
            type: end
        """)
    result = await engine.run(wf)
    result = await engine.resume(result.execution_id, approved=False)
    assert result.status == "failed"
    assert result.error["step"] == "approve"
    assert "was rejected and has no 'on_reject' step" in result.error["message"]


async def test_resuming_an_approval_with_only_a_response_halts_again(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(APPROVAL))
    result = await engine.resume(result.execution_id, response="what is this for?")
    assert result.status == "halted"
    assert result.halt["path"] == "approve"
    # the original request time is kept
    assert result.halt["data"]["requested_at"] == iso(T0)
    result = await engine.resume(result.execution_id, approved=True)
    assert result.output == "approved"


async def test_the_decision_and_who_made_it_are_recorded(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(APPROVAL))
    result = await engine.resume(result.execution_id, approved=True, by="alice")
    entries = await engine.entries(result.execution_id)
    resumed = next(e for e in entries if e.action == "resumed")
    assert resumed.output == {"approved": True, "response": None, "by": "alice"}
    decided = [e for e in entries if e.step_id == "approve" and e.action == "completed"]
    assert [e.output for e in decided] == [
        {"decision": "approved", "approved": True, "by": "alice", "response": None}
    ]


async def test_a_decision_does_not_leak_into_a_later_approval(engine: dwf.Engine) -> None:
    wf = workflow("""
        steps:
          - id: first
            type: approval
            prompt: First?
            next: second
          - id: second
            type: approval
            prompt: Second?
            next: done
          - id: done
            type: end
            result: done
        """)
    result = await engine.run(wf)
    result = await engine.resume(result.execution_id, approved=True)
    assert result.status == "halted"
    assert result.halt["prompt"] == "Second?"
    result = await engine.resume(result.execution_id, approved=True)
    assert result.output == "done"


async def test_an_approval_after_a_plain_halt_is_not_decided_by_its_approved(
    engine: dwf.Engine,
) -> None:
    wf = workflow("""
        steps:
          - id: wait
            type: halt
            next: approve
          - id: approve
            type: approval
            prompt: Really?
            next: done
          - id: done
            type: end
            result: done
        """)
    result = await engine.run(wf)
    result = await engine.resume(result.execution_id, approved=True)
    assert result.status == "halted"
    assert result.halt["prompt"] == "Really?"


# -------------------------------------------------------------------------------------- timeout


TIMED = """
    steps:
      - id: approve
        type: approval
        prompt: Ship it?
        timeout: 3600
        on_timeout: expired
        next: shipped
      - id: shipped
        type: end
        result: shipped
      - id: expired
        type: end
        result: expired
    """


async def test_an_approval_with_a_timeout_records_its_deadline(engine: dwf.Engine) -> None:
    result = await engine.run(workflow(TIMED))
    assert result.halt["expires_at"] == T0 + 3600
    assert result.halt["data"]["timeout"] == 3600
    assert result.halt["data"]["expires_at"] == iso(T0 + 3600)
    assert (await engine.get(result.execution_id)).wake_at == T0 + 3600


async def test_recover_before_the_deadline_leaves_the_approval_waiting(
    engine: dwf.Engine, clock: Clock
) -> None:
    result = await engine.run(workflow(TIMED))
    clock.advance(3599)
    assert await engine.recover() == []
    assert (await engine.get(result.execution_id)).status == dwf.Status.HALTED


async def test_recover_after_the_deadline_takes_on_timeout(
    engine: dwf.Engine, clock: Clock
) -> None:
    result = await engine.run(workflow(TIMED))
    clock.advance(3600)
    [recovered] = await engine.recover()
    assert recovered.execution_id == result.execution_id
    assert (recovered.status, recovered.output) == ("completed", "expired")
    actions = [(e.step_id, e.action) for e in await engine.entries(result.execution_id)]
    assert ("approve", "timed_out") in actions
    approve = [e for e in await engine.entries(result.execution_id) if e.action == "completed"]
    assert approve[0].output == {
        "decision": "timed_out",
        "approved": None,
        "by": None,
        "response": None,
    }


async def test_recover_of_one_execution_fires_its_timeout(engine: dwf.Engine, clock: Clock) -> None:
    result = await engine.run(workflow(TIMED))
    clock.advance(7200)
    [recovered] = await engine.recover(result.execution_id)
    assert recovered.output == "expired"


async def test_a_late_decision_after_the_deadline_takes_on_timeout(
    engine: dwf.Engine, clock: Clock
) -> None:
    result = await engine.run(workflow(TIMED))
    clock.advance(3601)
    result = await engine.resume(result.execution_id, approved=True)
    assert result.output == "expired"


async def test_a_decision_before_the_deadline_wins(engine: dwf.Engine, clock: Clock) -> None:
    result = await engine.run(workflow(TIMED))
    clock.advance(10)
    result = await engine.resume(result.execution_id, approved=True)
    assert result.output == "shipped"
    clock.advance(7200)
    assert await engine.recover() == []


async def test_a_timeout_without_on_timeout_fails_the_run(engine: dwf.Engine, clock: Clock) -> None:
    wf = workflow("""
        steps:
          - id: approve
            type: approval
            prompt: Ship it?
            timeout: 60
        """)
    await engine.run(wf)
    clock.advance(61)
    [recovered] = await engine.recover()
    assert recovered.status == "failed"
    assert "timed out after 60s without a decision" in recovered.error["message"]


async def test_the_deadline_counts_from_the_first_request_across_re_halts(
    engine: dwf.Engine, clock: Clock
) -> None:
    result = await engine.run(workflow(TIMED))
    clock.advance(1800)
    result = await engine.resume(result.execution_id, response="need more info")
    assert result.halt["expires_at"] == T0 + 3600
    clock.advance(1800)
    [recovered] = await engine.recover()
    assert recovered.output == "expired"


async def test_the_approval_timeout_survives_a_restart(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    clock = Clock()
    first = dwf.Engine(url, clock=clock)
    try:
        result = await first.run(workflow(TIMED))
    finally:
        await first.close()
    clock.advance(4000)
    second = dwf.Engine(url, clock=clock)
    try:
        [recovered] = await second.recover()
    finally:
        await second.close()
    assert (recovered.execution_id, recovered.output) == (result.execution_id, "expired")


async def test_approval_timeouts_inside_a_loop_fire_per_iteration(
    engine: dwf.Engine, clock: Clock
) -> None:
    wf = workflow("""
        steps:
          - id: each
            type: loop
            over: [1, 2]
            output: decisions
            next: finish
            do:
              - id: approve
                type: approval
                prompt: "Approve $item?"
                timeout: 60
                on_timeout: late
              - id: yes
                type: assign
                set: {decision: "yes $item"}
                next: __FINISHED__
              - id: late
                type: assign
                set: {decision: "late $item"}
          - id: finish
            type: end
            result: $decisions
        """)
    result = await engine.run(wf)
    clock.advance(61)
    [recovered] = await engine.recover()
    assert recovered.halt["path"] == "each[1]/approve"
    assert recovered.halt["expires_at"] == clock.now + 60
    result = await engine.resume(result.execution_id, approved=True)
    assert result.output == [{"decision": "late 1"}, {"decision": "yes 2"}]
