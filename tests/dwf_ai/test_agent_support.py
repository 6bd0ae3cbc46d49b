"""The original's support-desk workflow (reference support_agent.yml), unmodified, end to end.

The triage agent's answer is a JSON object, so ``route_request`` routes on
``triage_result.category`` to the billing or technical agent; handoffs between those two happen
inside their step, and past the handoff limit ``check_handoff``/``handle_handoff`` let the
workflow run the target agent. The ``guardrail`` step is replaced by a pass-through stand-in:
this file tests agents, not moderation.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

import dwf
from dwf.dsl.model import StepDef
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext
from dwf_ai import AIExtension
from dwf_ai.testing import ScriptedModel

# The reference workflow, as the original ships it.
SUPPORT_AGENT_YML = """
id: support_agent
name: Customer Support Agent
version: "1.0"
description: AI-powered customer support with specialized agents

inputs:
  message:
    type: string
    required: true
    description: Customer's support request
  customer_id:
    type: string
    required: false
    description: Optional customer identifier
  context:
    type: object
    required: false
    description: Additional context (order_id, etc.)

# AI Extension Configuration
agents:
  - id: triage
    name: Triage Agent
    model: gpt-4o-mini
    instructions: |
      You are a support triage agent. Analyze the customer's request and determine:
      1. The category (billing, technical, general)
      2. The urgency (low, medium, high)
      3. Key entities mentioned (order IDs, product names, etc.)

      Always be polite and acknowledge the customer's concern.
      Use the classify_request tool to record your analysis.
    tools:
      - classify_request

  - id: billing
    name: Billing Agent
    model: gpt-4o
    instructions: |
      You are a billing specialist. Help customers with:
      - Order lookups and status
      - Refunds and cancellations
      - Payment issues
      - Invoice requests

      Always verify the customer's identity before processing sensitive requests.
      Use available tools to look up information and take actions.
    tools:
      - lookup_order
      - refund_order
      - create_ticket
      - escalate
    handoffs:
      - agent_id: technical
        description: Transfer to technical support for product issues

  - id: technical
    name: Technical Support Agent
    model: gpt-4o
    instructions: |
      You are a technical support specialist. Help customers with:
      - Product setup and configuration
      - Troubleshooting issues
      - Password resets
      - Account access problems

      Be patient and provide step-by-step guidance.
    tools:
      - reset_password
      - check_status
      - create_ticket
      - escalate
    handoffs:
      - agent_id: billing
        description: Transfer to billing for payment issues

tools:
  - id: classify_request
    description: Classify the customer's support request
    parameters:
      - name: category
        type: string
        required: true
        description: "Category: billing, technical, or general"
      - name: urgency
        type: string
        required: true
        description: "Urgency: low, medium, or high"
      - name: summary
        type: string
        required: true
        description: Brief summary of the request
    service: SupportServices
    method: classify_request

  - id: lookup_order
    description: Look up an order by ID or customer email
    parameters:
      - name: order_id
        type: string
        description: Order ID to look up
      - name: email
        type: string
        description: Customer email to find orders
    service: SupportServices
    method: lookup_order

  - id: refund_order
    description: Process a refund for an order
    parameters:
      - name: order_id
        type: string
        required: true
        description: Order ID to refund
      - name: reason
        type: string
        required: true
        description: Reason for refund
      - name: amount
        type: number
        description: Partial refund amount (omit for full refund)
    service: SupportServices
    method: refund_order

  - id: create_ticket
    description: Create a support ticket for follow-up
    parameters:
      - name: subject
        type: string
        required: true
        description: Ticket subject
      - name: description
        type: string
        required: true
        description: Detailed description
      - name: priority
        type: string
        description: "Priority: low, medium, high"
    service: SupportServices
    method: create_ticket

  - id: check_status
    description: Check the status of a support ticket
    parameters:
      - name: ticket_id
        type: string
        required: true
        description: Ticket ID to check
    service: SupportServices
    method: check_status

  - id: reset_password
    description: Send password reset email to customer
    parameters:
      - name: email
        type: string
        required: true
        description: Customer's email address
    service: SupportServices
    method: reset_password

  - id: escalate
    description: Escalate to a human support agent
    parameters:
      - name: reason
        type: string
        required: true
        description: Reason for escalation
      - name: urgency
        type: string
        required: true
        description: "Urgency level: medium or high"
    service: SupportServices
    method: escalate

# Workflow Steps
steps:
  - id: start
    type: start
    next: moderate_input

  - id: moderate_input
    type: guardrail
    content: "$input.message"
    checks:
      - type: moderation
      - type: prompt_injection
    on_fail: rejected
    next: triage

  - id: triage
    type: agent
    agent_id: triage
    prompt: |
      Customer message: $input.message
      Customer ID: $input.customer_id
      Context: $input.context

      Please analyze this request and classify it.
    output: triage_result
    next: route_request

  - id: route_request
    type: router
    routes:
      - when:
          field: triage_result.category
          op: eq
          value: "billing"
        then: billing_agent
      - when:
          field: triage_result.category
          op: eq
          value: "technical"
        then: technical_agent
    default: general_response

  - id: billing_agent
    type: agent
    agent_id: billing
    prompt: |
      Customer request (classified as billing, urgency: $triage_result.urgency):
      $input.message

      Customer ID: $input.customer_id
      Context: $input.context

      Please help resolve this billing issue.
    output: agent_response
    next: check_handoff

  - id: technical_agent
    type: agent
    agent_id: technical
    prompt: |
      Customer request (classified as technical, urgency: $triage_result.urgency):
      $input.message

      Customer ID: $input.customer_id

      Please help resolve this technical issue.
    output: agent_response
    next: check_handoff

  - id: general_response
    type: agent
    agent_id: triage
    prompt: |
      The customer's request doesn't fit billing or technical categories.
      Please provide a helpful general response or ask clarifying questions.

      Customer message: $input.message
    output: agent_response
    next: end

  - id: check_handoff
    type: router
    routes:
      - when:
          field: _handoff_to
          op: exists
        then: handle_handoff
    default: end

  - id: handle_handoff
    type: handoff
    target_agent: "$_handoff_to"
    context:
      original_message: "$input.message"
      previous_response: "$agent_response"
      triage: "$triage_result"
    output: agent_response
    next: end

  - id: rejected
    type: assign
    set:
      agent_response: "I apologize, but I cannot process this request. Please contact support directly."
      triage_result: null
    next: end

  - id: end
    type: end
    result:
      response: "$agent_response"
      triage: "$triage_result"
"""  # noqa: E501

ORDERS = {
    "ORD-12345": {
        "id": "ORD-12345",
        "email": "alice@example.com",
        "status": "shipped",
        "total": 149.99,
        "items": [{"name": "Wireless Headphones", "quantity": 1}],
        "created_at": "2024-01-10",
        "tracking": "1Z999AA10123456784",
    },
    "ORD-67890": {
        "id": "ORD-67890",
        "email": "bob@example.com",
        "status": "delivered",
        "total": 299.99,
        "items": [{"name": "Smart Watch", "quantity": 1}],
        "created_at": "2024-01-05",
        "delivered_at": "2024-01-08",
    },
}


def _stamp() -> str:
    return datetime.now(UTC).isoformat()


def _ref(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


class SupportServices:
    """The original example's services (section 10.8), in memory."""

    def __init__(self) -> None:
        self.tickets: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def classify_request(self, category: str, urgency: str, summary: str) -> dict[str, Any]:
        self.calls.append("classify_request")
        return {
            "category": category,
            "urgency": urgency,
            "summary": summary,
            "classified_at": _stamp(),
        }

    def lookup_order(self, order_id: str | None = None, email: str | None = None) -> Any:
        self.calls.append("lookup_order")
        if order_id:
            return ORDERS.get(order_id) or {"error": f"Order not found: {order_id}"}
        if email:
            found = [o for o in ORDERS.values() if o["email"] == email]
            return (
                {"orders": found, "count": len(found)}
                if found
                else {"error": f"No orders found for {email}"}
            )
        return {"error": "Please provide order_id or email"}

    def refund_order(self, order_id: str, reason: str, amount: float | None = None) -> Any:
        self.calls.append("refund_order")
        order = ORDERS.get(order_id)
        if order is None:
            return {"error": f"Order not found: {order_id}"}
        return {
            "refund_id": _ref("REF"),
            "order_id": order_id,
            "amount": amount if amount is not None else order["total"],
            "reason": reason,
            "status": "processed",
            "processed_at": _stamp(),
        }

    def create_ticket(self, subject: str, description: str, priority: str = "medium") -> Any:
        self.calls.append("create_ticket")
        ticket = {
            "id": _ref("TKT"),
            "subject": subject,
            "description": description,
            "priority": priority,
            "status": "open",
            "created_at": _stamp(),
        }
        self.tickets[ticket["id"]] = ticket
        return ticket

    def check_status(self, ticket_id: str) -> Any:
        self.calls.append("check_status")
        return self.tickets.get(ticket_id) or {"error": f"Ticket not found: {ticket_id}"}

    def reset_password(self, email: str) -> Any:
        self.calls.append("reset_password")
        return {
            "email": email,
            "reset_sent": True,
            "message": f"Password reset email sent to {email}",
            "expires_in": "24 hours",
        }

    def escalate(self, reason: str, urgency: str) -> Any:
        self.calls.append("escalate")
        return {
            "escalation_id": _ref("ESC"),
            "reason": reason,
            "urgency": urgency,
            "status": "pending_human_review",
            "estimated_response": "1 hour" if urgency == "high" else "4 hours",
            "created_at": _stamp(),
        }


class PassGuardrailConfig(StepConfig):
    content: Any = None
    input: Any = None
    checks: list[Any] = Field(default_factory=list)
    on_fail: str | None = None


class PassGuardrail(StepType[PassGuardrailConfig]):
    """Stands in for the real guardrail: lets everything pass."""

    name = "guardrail"
    config_model = PassGuardrailConfig

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        return Continue()

    def targets(self, step: StepDef) -> list[tuple[str, str]]:
        on_fail = step.config.on_fail  # type: ignore[attr-defined]
        return [("on_fail", on_fail)] if on_fail else []


def run_desk(
    triage: list[Any], specialists: list[Any]
) -> tuple[dwf.Engine, dwf.WorkflowDefinition, SupportServices, ScriptedModel, ScriptedModel]:
    small = ScriptedModel(triage, name="gpt-4o-mini")
    large = ScriptedModel(specialists, name="gpt-4o")
    registry = dwf.default_registry()
    registry.install(AIExtension(models={"gpt-4o-mini": small, "gpt-4o": large}))
    registry.register_step(PassGuardrail)
    workflow = dwf.load_workflow(SUPPORT_AGENT_YML, registry=registry)
    services = SupportServices()
    engine = dwf.Engine("memory://", registry=registry, services={"SupportServices": services})
    return engine, workflow, services, small, large


def classify(category: str, urgency: str = "medium") -> dict[str, Any]:
    arguments = {"category": category, "urgency": urgency, "summary": f"a {category} request"}
    return {"tool_calls": [{"name": "classify_request", "arguments": arguments}]}


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def steps_run(entries: list[Any]) -> list[str]:
    return [e.step_id for e in entries if e.action == "completed"]


async def test_the_reference_workflow_loads_unmodified_and_routes_billing_to_billing() -> None:
    engine, workflow, services, small, large = run_desk(
        triage=[
            classify("billing", "high"),
            {"output": {"category": "billing", "urgency": "high", "summary": "double charge"}},
        ],
        specialists=[
            call("lookup_order", order_id="ORD-12345"),
            "Your order ORD-12345 has shipped; I have refunded the double charge.",
        ],
    )
    result = await engine.run(
        workflow, {"message": "I was charged twice for ORD-12345", "customer_id": "CUST-001"}
    )

    assert result.status == "completed"
    assert result.output == {
        "response": "Your order ORD-12345 has shipped; I have refunded the double charge.",
        "triage": {"category": "billing", "urgency": "high", "summary": "double charge"},
    }
    assert services.calls == ["classify_request", "lookup_order"]
    assert steps_run(await engine.entries(result.execution_id)) == [
        "start",
        "moderate_input",
        "triage",
        "route_request",
        "billing_agent",
        "check_handoff",
        "end",
    ]
    billing_prompt = large.requests[0].messages[1]["content"]
    assert billing_prompt.startswith(
        "Customer request (classified as billing, urgency: high):\n"
        "I was charged twice for ORD-12345\n\nCustomer ID: CUST-001"
    )
    assert large.requests[0].messages[0]["content"].startswith("You are a billing specialist.")
    assert small.requests[0].messages[0]["content"].startswith("You are a support triage agent.")


async def test_technical_requests_reach_the_technical_agent_which_can_hand_off_in_its_step() -> (
    None
):
    engine, workflow, services, _, large = run_desk(
        triage=[{"output": {"category": "technical", "urgency": "low", "summary": "login"}}],
        specialists=[
            call("reset_password", email="alice@example.com"),
            {"content": "This is also about a refund.", **call("transfer_to_billing")},
            call("refund_order", order_id="ORD-12345", reason="cannot log in"),
            "I reset your password and refunded ORD-12345.",
        ],
    )
    result = await engine.run(workflow, {"message": "Can't log in; refund me"})

    assert result.output["response"] == "I reset your password and refunded ORD-12345."
    assert services.calls == ["reset_password", "refund_order"]
    assert [t.name for t in large.requests[0].tools] == [
        "reset_password",
        "check_status",
        "create_ticket",
        "escalate",
        "transfer_to_billing",
    ]
    after = large.requests[2]
    assert after.messages[0]["content"].startswith("You are a billing specialist.")
    assert "refund_order" in [t.name for t in after.tools]
    record = await engine.get(result.execution_id)
    assert record.variables["_current_agent"] == "billing"
    assert "_handoff_to" not in record.variables
    # The handoff completed inside the step, so check_handoff went straight to the end.
    assert "handle_handoff" not in steps_run(await engine.entries(result.execution_id))


async def test_other_requests_get_the_general_response() -> None:
    engine, workflow, _, small, _ = run_desk(
        triage=[
            {"output": {"category": "general", "urgency": "low", "summary": "hours"}},
            "We are open 9 to 5, Monday to Friday.",
        ],
        specialists=[],
    )
    result = await engine.run(workflow, {"message": "When are you open?"})
    assert result.output == {
        "response": "We are open 9 to 5, Monday to Friday.",
        "triage": {"category": "general", "urgency": "low", "summary": "hours"},
    }
    assert (
        small.requests[1]
        .messages[1]["content"]
        .startswith("The customer's request doesn't fit billing or technical categories.")
    )


async def test_past_the_handoff_limit_check_handoff_routes_to_the_handoff_step() -> None:
    ping_pong = [call("transfer_to_technical"), call("transfer_to_billing")] * 3
    engine, workflow, _, _, large = run_desk(
        triage=[{"output": {"category": "billing", "urgency": "medium", "summary": "odd"}}],
        specialists=[*ping_pong, "Billing here: I will sort this out myself."],
    )
    result = await engine.run(workflow, {"message": "Something odd with my bill"})

    assert result.status == "completed"
    assert result.output["response"] == "Billing here: I will sort this out myself."
    entries = await engine.entries(result.execution_id)
    assert steps_run(entries)[-3:] == ["check_handoff", "handle_handoff", "end"]
    audit = next(e.output for e in entries if e.step_id == "billing_agent")
    assert len(audit["handoffs"]) == 5 and audit["handoff_to"] == "billing"
    # handle_handoff gave billing a new conversation holding the context the YAML names.
    fresh = large.requests[-1].messages
    assert fresh[0]["content"].startswith("You are a billing specialist.")
    context = json.loads(fresh[1]["content"].split("Context:\n", 1)[1].rsplit("\n\n", 1)[0])
    assert context == {
        "original_message": "Something odd with my bill",
        "previous_response": "",
        "triage": {"category": "billing", "urgency": "medium", "summary": "odd"},
    }
    record = await engine.get(result.execution_id)
    assert "_handoff_to" not in record.variables
    assert record.variables["_handoff_context"]["to"] == "billing"
    assert record.variables["_current_agent"] == "billing"
