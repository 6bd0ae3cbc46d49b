"""An agent with a tool and a handoff, through the real OpenAI and Anthropic SDKs.

The FakeProvider speaks both wire formats; the SDKs do the real encoding of tools, tool calls,
tool results and the conversation. Run in-process (ASGI transport) and over a loopback port.
"""

from __future__ import annotations

from typing import Any

import pytest

import dwf
from dwf_ai import AIExtension
from dwf_ai.testing import FakeProvider

WORKFLOW = """
id: desk
name: Desk
inputs:
  question: {type: string}
agents:
  - id: front
    model: front-model
    instructions: You answer order questions. Hand billing questions to billing.
    tools: [lookup_order]
    handoffs:
      - agent_id: billing
        description: Billing questions
  - id: billing
    model: billing-model
    instructions: You handle refunds.
    tools: [lookup_order]
tools:
  - id: lookup_order
    description: Look up an order
    parameters:
      - {name: order_id, type: string, required: true}
    service: Orders
    method: lookup
steps:
  - id: answer
    type: agent
    agent_id: front
    prompt: $input.question
    output: reply
    next: done
  - id: done
    type: end
    result: {reply: $reply}
"""


class Orders:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def lookup(self, order_id: str) -> dict[str, Any]:
        self.seen.append(order_id)
        return {"order_id": order_id, "total": 42.0, "status": "delivered"}


def script(fake: FakeProvider) -> None:
    fake.script(
        [
            {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-7"}}]},
            {"tool_calls": [{"name": "transfer_to_billing", "arguments": {}}]},
        ],
        model="front-model",
    )
    fake.script(["A-7 (42.0) is refunded."], model="billing-model")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("transport", ["in-process", "loopback"])
async def test_an_agent_with_a_tool_and_a_handoff_runs_through_the_real_sdk(
    provider: str, transport: str
) -> None:
    fake = FakeProvider()
    script(fake)
    orders = Orders()

    async def run(url: str | None) -> dwf.RunResult:
        make = fake.openai_model if provider == "openai" else fake.anthropic_model
        models = {name: make(name, url=url) for name in ("front-model", "billing-model")}
        registry = dwf.default_registry()
        registry.install(AIExtension(models=models))
        workflow = dwf.load_workflow(WORKFLOW, registry=registry)
        engine = dwf.Engine("memory://", registry=registry, services={"Orders": orders})
        try:
            return await engine.run(workflow, {"question": "Refund order A-7 please"})
        finally:
            await engine.close()

    if transport == "loopback":
        with fake.serve() as url:
            result = await run(url)
    else:
        result = await run(None)

    assert result.status == "completed", result.error
    assert result.output == {"reply": "A-7 (42.0) is refunded."}
    assert orders.seen == ["A-7"]
    assert [r.model for r in fake.requests] == ["front-model", "front-model", "billing-model"]
    path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
    assert {r.path for r in fake.requests} == {path}
    # The billing agent got the whole conversation, with its own instructions and tools.
    billing = fake.requests[-1].body
    text = str(billing)
    assert "You handle refunds." in text
    assert "Refund order A-7 please" in text
    assert "delivered" in text  # the tool result travelled with its tool-call id
    assert fake.remaining("front-model") == fake.remaining("billing-model") == 0
