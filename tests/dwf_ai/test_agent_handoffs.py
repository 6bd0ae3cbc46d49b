"""Handoffs: ``transfer_to_<agent>`` tools switch the agent inside the step; past the limit the
workflow's ``handoff`` step takes over."""

from __future__ import annotations

from typing import Any

import dwf
from dwf_ai import AIExtension
from dwf_ai.testing import ScriptedModel

WORKFLOW = """
id: desk
name: Desk
agents:
  - id: triage
    model: small
    instructions: You triage.
    tools: [classify]
    handoffs:
      - {agent_id: billing, description: Transfer to billing for payments}
  - id: billing
    model: large
    instructions: You handle billing.
    tools: [refund]
    handoffs: [triage]
tools:
  - {id: classify, description: Classify, service: Desk, method: classify,
     parameters: [{name: category, type: string}]}
  - {id: refund, description: Refund, service: Desk, method: refund,
     parameters: [{name: order_id, type: string}]}
steps:
  - id: talk
    type: agent
    agent_id: triage
    prompt: "$input.message"
    output: answer
    next: check
  - id: check
    type: router
    routes:
      - {when: {field: _handoff_to, op: exists}, then: take_over}
    default: done
  - id: take_over
    type: handoff
    context: {previous: $answer}
    reason: the agent ran out of handoffs
    output: answer
    next: done
  - id: done
    type: end
    result:
      answer: $answer
      agent: $_current_agent
      pending: $_handoff_to
      handoff: $_handoff_context
"""


class Desk:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def classify(self, category: str) -> str:
        self.calls.append(f"classify {category}")
        return category

    def refund(self, order_id: str) -> str:
        self.calls.append(f"refund {order_id}")
        return f"refunded {order_id}"


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def setup(
    models: dict[str, ScriptedModel], text: str = WORKFLOW
) -> tuple[dwf.WorkflowDefinition, dwf.Engine, list[dwf.Event], Desk]:
    registry = dwf.default_registry()
    registry.install(AIExtension(models=models))
    desk = Desk()
    events: list[dwf.Event] = []
    engine = dwf.Engine(
        "memory://", registry=registry, services={"Desk": desk}, on_event=events.append
    )
    return dwf.load_workflow(text, registry=registry), engine, events, desk


async def test_a_transfer_tool_switches_instructions_tools_and_model_in_the_same_step() -> None:
    small = ScriptedModel([call("transfer_to_billing")])
    large = ScriptedModel([call("refund", order_id="A-1"), "Refunded A-1."])
    workflow, engine, events, desk = setup({"small": small, "large": large})
    result = await engine.run(workflow, {"message": "Refund A-1"})

    assert result.output == {
        "answer": "Refunded A-1.",
        "agent": "billing",
        "pending": None,
        "handoff": None,
    }
    assert desk.calls == ["refund A-1"]
    first = small.requests[0]
    assert [t.name for t in first.tools] == ["classify", "transfer_to_billing"]
    assert first.tools[1].description == "Transfer to billing for payments"
    taken_over = large.requests[0]
    assert taken_over.messages[0] == {"role": "system", "content": "You handle billing."}
    assert [t.name for t in taken_over.tools] == ["refund", "transfer_to_triage"]
    # The conversation went along: the prompt, the transfer call and its result.
    assert taken_over.messages[1] == {"role": "user", "content": "Refund A-1"}
    assert taken_over.messages[2]["tool_calls"][0]["name"] == "transfer_to_billing"
    assert taken_over.messages[3]["content"] == (
        "Transferred to agent 'billing', who now continues."
    )
    handoffs = [e.data for e in events if e.type == "agent.handoff"]
    assert handoffs == [{"from_agent": "triage", "to_agent": "billing", "deferred": False}]
    entries = await engine.entries(result.execution_id)
    audit = next(e.output for e in entries if e.step_id == "talk" and e.action == "completed")
    assert (audit["agent"], audit["handoffs"]) == ("billing", ["triage->billing"])


async def test_past_the_limit_the_step_ends_with_handoff_to_and_the_handoff_step_runs_it() -> None:
    small = ScriptedModel([call("transfer_to_billing"), "Triage here: what is the order id?"])
    large = ScriptedModel([{"content": "Not mine.", **call("transfer_to_triage")}])
    text = WORKFLOW.replace(
        "output: answer\n    next: check", "output: answer\n    max_handoffs: 1\n    next: check"
    )
    workflow, engine, events, _ = setup({"small": small, "large": large}, text)
    result = await engine.run(workflow, {"message": "Hello"})

    assert result.output["answer"] == "Triage here: what is the order id?"
    assert result.output["agent"] == "triage"
    assert result.output["pending"] is None  # the handoff step cleared it
    assert result.output["handoff"]["from"] == "billing"
    assert result.output["handoff"]["to"] == "triage"
    assert result.output["handoff"]["reason"] == "the agent ran out of handoffs"
    # The handoff step starts a new conversation for triage, with the context it was given.
    fresh = small.requests[1].messages
    assert fresh[0] == {"role": "system", "content": "You triage."}
    assert fresh[1]["content"] == (
        "The conversation was handed over to you by agent 'billing'.\n\n"
        "Reason: the agent ran out of handoffs\n\n"
        'Context:\n{\n  "previous": "Not mine."\n}\n\n'
        "Please take it from here."
    )
    handoffs = [e.data for e in events if e.type == "agent.handoff"]
    assert handoffs[-1] == {"from_agent": "billing", "to_agent": "triage", "deferred": True}


async def test_max_handoffs_zero_leaves_every_handoff_to_the_workflow() -> None:
    small = ScriptedModel([call("transfer_to_billing")])
    large = ScriptedModel(["Billing here."])
    text = WORKFLOW.replace(
        "output: answer\n    next: check", "output: answer\n    max_handoffs: 0\n    next: check"
    )
    workflow, engine, _, _ = setup({"small": small, "large": large}, text)
    result = await engine.run(workflow, {"message": "Hello"})
    assert result.output["answer"] == "Billing here."
    assert result.output["agent"] == "billing"
    assert result.output["handoff"]["from"] == "triage"


async def test_only_the_first_handoff_of_a_turn_is_taken() -> None:
    text = WORKFLOW.replace(
        "handoffs: [triage]", "handoffs: [triage]\n  - {id: other, model: large}"
    )
    text = text.replace(
        "      - {agent_id: billing, description: Transfer to billing for payments}",
        "      - {agent_id: billing, description: Transfer to billing for payments}\n      - other",
    )
    small = ScriptedModel(
        [
            {
                "tool_calls": [
                    {"name": "transfer_to_billing", "arguments": {}},
                    {"name": "transfer_to_other", "arguments": {}},
                ]
            }
        ]
    )
    large = ScriptedModel(["Billing here."])
    workflow, engine, _, _ = setup({"small": small, "large": large}, text)
    result = await engine.run(workflow, {"message": "Hello"})
    assert result.output["agent"] == "billing"
    results = [m for m in large.requests[0].messages if m["role"] == "tool"]
    assert results[1]["is_error"] is True
    assert results[1]["content"] == (
        "Error: only one handoff per turn is possible; this one was ignored."
    )


HANDOFF_ONLY = """
id: h
name: H
agents:
  - {id: billing, model: large, instructions: You handle billing.}
steps:
  - id: pass
    type: handoff
    to: billing
    from: front desk
    prompt: "Please help $input.name with invoice $input.invoice."
    output: reply
    next: end
  - {id: end, type: end, result: {reply: $reply, handoff: $_handoff_context}}
"""


async def test_a_handoff_step_with_a_prompt_runs_the_target_agent_and_records_the_handoff() -> None:
    large = ScriptedModel(["Here is your invoice."])
    workflow, engine, _, _ = setup({"large": large}, HANDOFF_ONLY)
    result = await engine.run(workflow, {"name": "Ann", "invoice": "INV-7"})
    assert result.output["reply"] == "Here is your invoice."
    assert result.output["handoff"] == {
        "from": "front desk",
        "to": "billing",
        "reason": None,
        "timestamp": result.output["handoff"]["timestamp"],
    }
    assert large.requests[0].messages[1] == {
        "role": "user",
        "content": "Please help Ann with invoice INV-7.",
    }


async def test_a_handoff_step_without_a_target_fails_with_what_to_do() -> None:
    text = HANDOFF_ONLY.replace("    to: billing\n", "")
    workflow, engine, _, _ = setup({"large": ScriptedModel([])}, text)
    result = await engine.run(workflow, {"name": "Ann", "invoice": "INV-7"})
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["message"] == (
        "handoff 'pass' has no target: set 'to' (or 'target_agent'), or run it after an agent "
        "step that set '_handoff_to'"
    )
