"""A stand-in for the LLMs, so the support desk runs without an API key.

`offline_model()` is a `FunctionModel` (from `dwf_ai.testing`) that answers the way the real
agents would, from plain rules: the triage agent classifies by keywords; the specialists call
`lookup_order`, `refund_order` / `refund_large_order` and `reset_password` when the message
asks for them, hand over to each other when the message is about both money and a device, and
answer from the tool results and the knowledge base passages in their prompt. It speaks the same
tool-calling protocol as OpenAI and Anthropic, so the workflow, the tools, the approvals and the
handoffs run exactly as they do with a real model.

`offline_moderator()` stands in for OpenAI's moderation endpoint with a short word list.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dwf_ai.models.base import ModelRequest, ModerationResult
from dwf_ai.testing import FunctionModel

__all__ = ["classify", "offline_model", "offline_moderator"]

BILLING_WORDS = (
    "refund", "money back", "charge", "invoice", "payment", "paid", "bill", "price",
    "order",
)  # fmt: skip
TECHNICAL_WORDS = (
    "password", "log in", "login", "sign in", "locked", "pair", "bluetooth", "connect",
    "connection", "crash", "sync", "firmware", "update", "reset", "battery", "app", "error",
    "not working",
)  # fmt: skip
URGENT_WORDS = ("urgent", "asap", "immediately", "right now", "locked", "fraud", "!!")
HARMFUL_WORDS = ("kill you", "bomb", "i will hurt")

_ORDER_ID = re.compile(r"\bORD-\d+\b", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_AMOUNT = re.compile(r"(?:\$|€|£)\s*(\d+(?:\.\d{1,2})?)|(\d+(?:\.\d{1,2})?)\s*(?:usd|eur|dollars?)")


def _hits(text: str, words: tuple[str, ...]) -> int:
    return sum(1 for word in words if re.search(rf"\b{re.escape(word)}(?:s|d|ed|ing)?\b", text))


def classify(message: str) -> dict[str, str]:
    """The triage agent's answer: category, urgency and a one-line summary."""
    text = message.lower()
    billing, technical = _hits(text, BILLING_WORDS), _hits(text, TECHNICAL_WORDS)
    if billing == technical == 0:
        category = "general"
    else:
        category = "technical" if technical > billing else "billing"
    if any(word in text for word in URGENT_WORDS):
        urgency = "high"
    else:
        urgency = "low" if category == "general" else "medium"
    first = re.split(r"(?<=[.!?])\s", message.strip(), maxsplit=1)[0]
    summary = first if len(first) <= 100 else first[:97] + "..."
    return {"category": category, "urgency": urgency, "summary": f"{category}: {summary}"}


# ------------------------------------------------------------------------------ the agents


class _Case:
    """What a specialist knows: the customer's message, email and the knowledge base passages
    (from its prompt), and what the tools have answered so far in this conversation."""

    def __init__(self, request: ModelRequest) -> None:
        prompt = next((m["content"] for m in request.messages if m["role"] == "user"), "")
        found = re.search(r"<<<\n(.*?)\n>>>", prompt, re.DOTALL)
        self.message = found.group(1) if found else prompt
        self.text = self.message.lower()
        email = re.search(r"^Customer email: *(\S*)", prompt, re.MULTILINE)
        in_message = _EMAIL.search(self.message)
        self.email = (email.group(1) if email else "") or (in_message[0] if in_message else "")
        passages = prompt.split("Knowledge base passages:", 1)[-1].strip()
        try:
            self.passages: list[dict[str, Any]] = json.loads(passages)
        except ValueError:
            self.passages = []
        self.tools = {tool.name for tool in request.tools}
        self.called: set[str] = set()
        self.results: list[tuple[str, Any, bool]] = []  # (tool, result, is_error)
        for message in request.messages:
            for call in message.get("tool_calls") or []:
                self.called.add(call["name"])
            if message["role"] == "tool":
                self.results.append((message["name"], _parse(message["content"]), _failed(message)))

    def result(self, tool: str) -> Any:
        for name, value, is_error in reversed(self.results):
            if name == tool and not is_error:
                return value
        return None

    @property
    def handed_over(self) -> bool:
        return any(name.startswith("transfer_to_") for name in self.called)

    def mentions(self, words: tuple[str, ...]) -> bool:
        return _hits(self.text, words) > 0


def _parse(content: str) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content


def _failed(message: dict[str, Any]) -> bool:
    return bool(message.get("is_error")) or str(message.get("content", "")).startswith("Error")


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def _billing(case: _Case) -> dict[str, Any] | str:
    order_id = _ORDER_ID.search(case.message)
    wants_refund = case.mentions(("refund", "money back"))
    if order_id and "lookup_order" not in case.called:
        return _call("lookup_order", order_id=order_id[0].upper())
    order = case.result("lookup_order")
    refunds = {"refund_order", "refund_large_order"}
    if (
        wants_refund
        and isinstance(order, dict)
        and "order_id" in order
        and not refunds & case.called
    ):
        amount = _amount(case.message) or float(order["total"])
        tool = "refund_large_order" if amount > 100 else "refund_order"
        arguments: dict[str, Any] = {"order_id": order["order_id"], "reason": case.message[:200]}
        if amount != float(order["total"]):
            arguments["amount"] = amount
        return _call(tool, **arguments)
    if not case.handed_over and case.mentions(TECHNICAL_WORDS):
        return _call("transfer_to_technical")
    return _answer(case, ask=None if order_id or not wants_refund else "your order number")


def _technical(case: _Case) -> dict[str, Any] | str:
    wants_reset = case.mentions(("password", "log in", "login", "sign in", "locked"))
    if wants_reset and case.email and "reset_password" not in case.called:
        return _call("reset_password", email=case.email)
    if not case.handed_over and case.mentions(BILLING_WORDS):
        return _call("transfer_to_billing")
    ask = "the email address of your account" if wants_reset and not case.email else None
    return _answer(case, ask=ask)


def _general(case: _Case) -> str:
    return _answer(case, ask=None)


def _amount(message: str) -> float | None:
    found = _AMOUNT.search(message.lower())
    if not found:
        return None
    return float(found.group(1) or found.group(2))


def _answer(case: _Case, *, ask: str | None) -> str:
    """A final answer from what the tools said and the best knowledge base passages."""
    lines = ["Thanks for contacting us."]
    for tool, value, is_error in case.results:
        lines.append(_describe(tool, value, is_error))
    if ask:
        lines.append(f"Could you tell me {ask}?")
    for passage in case.passages[:2]:
        lines.append(f"From our help center ({passage['file']}): {passage['snippet']}")
    if len(lines) == 1:
        lines.append("I could not find an answer to that; I can open a ticket for a colleague.")
    return "\n".join(line for line in lines if line)


def _describe(tool: str, value: Any, is_error: bool) -> str:
    if tool.startswith("transfer_to_"):
        return ""
    if is_error:
        text = str(value).removeprefix("Error: ")
        if "not approved" in text:
            said = text.partition("They said:")[2].strip()
            why = f" (they said: {said})" if said else ""
            return f"A supervisor did not approve the refund{why}, so no money was refunded."
        return f"I could not complete {tool.replace('_', ' ')}: {text}"
    if tool == "lookup_order" and isinstance(value, dict) and "order_id" in value:
        items = ", ".join(item["name"] for item in value.get("items", []))
        tracking = value.get("tracking_number")
        where = f"; tracking number {tracking}" if tracking else ""
        return (
            f"Order {value['order_id']} ({items}, {value['total']:.2f}) is "
            f"{value['status']}{where}."
        )
    if tool in ("refund_order", "refund_large_order") and isinstance(value, dict):
        return (
            f"I refunded {value['amount']:.2f} for order {value['order_id']} "
            f"({value['refund_id']}); it reaches your card in 5-7 business days."
        )
    if tool == "reset_password" and isinstance(value, dict):
        return f"I sent a password reset email to {value['email']}; the link expires in 24 hours."
    if tool == "create_ticket" and isinstance(value, dict):
        return f"I opened ticket {value['id']} for a colleague to follow up."
    return f"{tool}: {json.dumps(value)}"


def _respond(request: ModelRequest) -> Any:
    if request.output_schema is not None:  # the triage agent: a structured answer
        case = _Case(request)
        return {"output": classify(case.message)}
    case = _Case(request)
    if "refund_order" in case.tools:
        return _billing(case)
    if "reset_password" in case.tools:
        return _technical(case)
    return _general(case)


def offline_model() -> FunctionModel:
    """One model for every agent; it tells them apart by the tools it is offered."""
    return FunctionModel(_respond, name="offline")


def offline_moderator() -> Any:
    """Flags a few obviously harmful phrases, like a (very small) moderation endpoint."""

    def moderate(text: str) -> ModerationResult:
        flagged = any(word in text.lower() for word in HARMFUL_WORDS)
        return ModerationResult(flagged=flagged, categories=("violence",) if flagged else ())

    return moderate
