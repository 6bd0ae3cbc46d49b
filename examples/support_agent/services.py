"""The support desk's back office: orders, refunds, tickets and password resets, in memory.

The agents reach these methods through the workflow's `tools:`; `dwf run --services` and
`dwf mcp --services` register the class, and dwf creates one instance per engine, so the
state below lives as long as the engine (one `dwf run`, one `run.py` session, one MCP server).
"""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

from dwf import NonRetryableError

#: A refund above this amount needs a supervisor: agents must use `refund_large_order`, which
#: the workflow marks `needs_approval: true`.
REFUND_LIMIT = 100.00

ORDERS: dict[str, dict[str, Any]] = {
    "ORD-12345": {
        "order_id": "ORD-12345",
        "email": "alice@example.com",
        "status": "shipped",
        "total": 149.99,
        "items": [{"name": "Wireless Headphones", "quantity": 1, "price": 149.99}],
        "created_at": "2024-01-10",
        "tracking_number": "1Z999AA10123456784",
    },
    "ORD-67890": {
        "order_id": "ORD-67890",
        "email": "bob@example.com",
        "status": "delivered",
        "total": 299.99,
        "items": [{"name": "Smart Watch", "quantity": 1, "price": 299.99}],
        "created_at": "2024-01-05",
        "delivered_at": "2024-01-08",
    },
    "ORD-24680": {
        "order_id": "ORD-24680",
        "email": "alice@example.com",
        "status": "delivered",
        "total": 39.98,
        "items": [{"name": "Charging Cable", "quantity": 2, "price": 19.99}],
        "created_at": "2024-02-02",
        "delivered_at": "2024-02-05",
    },
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _short_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return f"{prefix}-{digest[:8].upper()}"


class SupportDesk:
    """What the agents can look up and do. Every method returns JSON-like data; a request that
    cannot be served raises `NonRetryableError` with a message the model can act on."""

    def __init__(self) -> None:
        self.orders = copy.deepcopy(ORDERS)
        self.refunds: dict[str, dict[str, Any]] = {}  # by idempotency key
        self.tickets: dict[str, dict[str, Any]] = {}

    # -- orders -----------------------------------------------------------------------------

    def lookup_order(self, order_id: str | None = None, email: str | None = None) -> Any:
        """One order by id, or every order of an email address."""
        if order_id:
            order = self.orders.get(order_id.strip().upper())
            if order is None:
                raise NonRetryableError(f"Order not found: {order_id}")
            return order
        if email:
            found = [o for o in self.orders.values() if o["email"] == email.strip().lower()]
            if not found:
                raise NonRetryableError(f"No orders found for {email}")
            return {"orders": found, "count": len(found)}
        raise NonRetryableError("Please provide order_id or email")

    def refund_order(
        self,
        order_id: str,
        reason: str,
        amount: float | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Refund up to REFUND_LIMIT at once; a larger refund is refused with what to do."""
        if idempotency_key in self.refunds:  # the same call repeated after a crash
            return self.refunds[idempotency_key]
        order, amount = self._refundable(order_id, amount)
        if amount > REFUND_LIMIT:
            raise NonRetryableError(
                f"A refund of {amount:.2f} is over the {REFUND_LIMIT:.2f} limit for agents. Call "
                "refund_large_order instead: a supervisor approves it first."
            )
        return self._refund(order, amount, reason, idempotency_key, approved_by=None)

    def refund_large_order(
        self,
        order_id: str,
        reason: str,
        amount: float | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Refund any amount. The workflow halts for a supervisor before this runs."""
        if idempotency_key in self.refunds:  # the same call repeated after a crash
            return self.refunds[idempotency_key]
        order, amount = self._refundable(order_id, amount)
        return self._refund(order, amount, reason, idempotency_key, approved_by="supervisor")

    def _refundable(self, order_id: str, amount: float | None) -> tuple[dict[str, Any], float]:
        order = self.orders.get(order_id.strip().upper())
        if order is None:
            raise NonRetryableError(f"Order not found: {order_id}")
        if order.get("refund"):
            raise NonRetryableError(
                f"Order {order['order_id']} was already refunded ({order['refund']['refund_id']})"
            )
        amount = round(float(order["total"] if amount is None else amount), 2)
        if not 0 < amount <= order["total"]:
            raise NonRetryableError(
                f"A refund must be more than 0 and at most the order total {order['total']:.2f}"
            )
        return order, amount

    def _refund(
        self,
        order: dict[str, Any],
        amount: float,
        reason: str,
        idempotency_key: str | None,
        approved_by: str | None,
    ) -> dict[str, Any]:
        # A tool call repeated after a crash carries the same key, so it refunds once.
        key = idempotency_key or _short_id("call", order["order_id"], amount, reason, _now())
        refund = {
            "refund_id": _short_id("REF", key),
            "order_id": order["order_id"],
            "amount": amount,
            "reason": reason,
            "status": "processed",
            "approved_by": approved_by,
            "processed_at": _now(),
        }
        self.refunds[key] = refund
        order["refund"] = refund
        return refund

    # -- tickets and accounts ---------------------------------------------------------------

    def create_ticket(
        self, subject: str, description: str, priority: str | None = None
    ) -> dict[str, Any]:
        """Open a ticket for a person to follow up."""
        ticket = {
            "id": _short_id("TKT", subject, description, len(self.tickets)),
            "subject": subject,
            "description": description,
            "priority": priority or "medium",
            "status": "open",
            "created_at": _now(),
        }
        self.tickets[ticket["id"]] = ticket
        return ticket

    def check_status(self, ticket_id: str) -> dict[str, Any]:
        """A ticket opened earlier in this session."""
        ticket = self.tickets.get(ticket_id.strip().upper())
        if ticket is None:
            raise NonRetryableError(f"Ticket not found: {ticket_id}")
        return ticket

    def reset_password(self, email: str) -> dict[str, Any]:
        """Send a password reset email."""
        return {
            "email": email,
            "reset_sent": True,
            "message": f"Password reset email sent to {email}",
            "expires_in": "24 hours",
        }

    def escalate(self, reason: str, urgency: str) -> dict[str, Any]:
        """Hand the case to a person."""
        return {
            "escalation_id": _short_id("ESC", reason, urgency, _now()),
            "reason": reason,
            "urgency": urgency,
            "status": "pending_human_review",
            "estimated_response": "1 hour" if urgency == "high" else "4 hours",
            "created_at": _now(),
        }
