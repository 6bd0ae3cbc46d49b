"""Services of the order fulfillment example: in-memory stand-ins for an order desk, a
warehouse, a carrier and a payment gateway.

They are deterministic, so the example gives the same answers on every run:

* the warehouse has a fixed stock list (``CATALOG``); reserving does not decrement it, and ids
  (reservations, shipments, tracking numbers) are derived from the step's idempotency key, so a
  retried or recovered step gets the same id back;
* the payment gateway keeps the one piece of state a real gateway keeps: a ledger of charges by
  idempotency key. A charge whose key is already in the ledger is not made again; the original
  charge is returned. Payment tokens choose the gateway's behaviour:

  ``tok_declined``
      the card is declined (a ``NonRetryableError``: retrying cannot help);
  ``tok_flaky_gateway``
      the gateway takes the charge but the connection drops before its answer arrives (a
      ``ConnectionError``, which dwf retries); the retry, with the same idempotency key, gets the
      original charge back instead of charging again;
  anything else
      the charge succeeds.

dwf creates one instance of each class per process (per engine), so each ``dwf`` command starts
with an empty ledger; what survives between commands is the workflow's own state in the store.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from dwf import NonRetryableError

Order = dict[str, Any]
Item = dict[str, Any]

#: product id -> (name, units in stock)
CATALOG: dict[str, tuple[str, int]] = {
    "PROD-001": ("Widget Pro", 100),
    "PROD-002": ("Gadget Plus", 50),
    "PROD-003": ("Gizmo Max", 0),
    "PROD-004": ("Device Ultra", 25),
}
TAX_RATE = 0.08
STANDARD_SHIPPING = 5.99
EXPEDITED_SHIPPING = 14.99


def _digest(key: str, length: int) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:length].upper()


class CardDeclined(NonRetryableError):
    """The issuer declined the card."""


class IdempotencyConflict(NonRetryableError):
    """An idempotency key was reused for a different charge."""


class OrderService:
    """Checks orders and prices them."""

    def validate_order(self, order_id: str, customer: Order, items: list[Item]) -> dict[str, Any]:
        """``{valid, errors}``; every problem is listed, items numbered from 1."""
        errors: list[str] = []
        if not order_id.strip():
            errors.append("Order ID required")
        if "@" not in str(customer.get("email") or ""):
            errors.append("Customer email required")
        address = customer.get("address") or {}
        if not (address.get("city") and address.get("state")):
            errors.append("Customer shipping address (city, state) required")
        if not items:
            errors.append("Items required")
        for n, item in enumerate(items, start=1):
            if not item.get("product_id"):
                errors.append(f"Item {n}: product_id required")
            quantity = item.get("quantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
                errors.append(f"Item {n}: quantity must be a positive integer")
            price = item.get("price")
            if not isinstance(price, int | float) or isinstance(price, bool) or price <= 0:
                errors.append(f"Item {n}: price required")
        return {"valid": not errors, "errors": errors or None}

    def calculate_totals(self, items: list[Item], shipping: float) -> dict[str, float]:
        """Subtotal, 8 % tax, shipping and total, rounded to cents."""
        subtotal = round(sum(item["quantity"] * item["price"] for item in items), 2)
        tax = round(subtotal * TAX_RATE, 2)
        return {
            "subtotal": subtotal,
            "tax": tax,
            "shipping": shipping,
            "total": round(subtotal + tax + shipping, 2),
        }


class InventoryService:
    """The warehouse: stock checks, reservations and releases."""

    def check_availability(self, items: list[Item]) -> dict[str, Any]:
        """Which products are in stock in the requested quantities."""
        available: list[str] = []
        unavailable: list[dict[str, Any]] = []
        for item in items:
            product_id = item["product_id"]
            in_stock = CATALOG.get(product_id, ("", 0))[1]
            if in_stock >= item["quantity"]:
                available.append(product_id)
            else:
                unavailable.append(
                    {"product_id": product_id, "requested": item["quantity"], "available": in_stock}
                )
        return {
            "all_available": not unavailable,
            "available": available,
            "unavailable": unavailable,
        }

    def reserve(self, order_id: str, items: list[Item], idempotency_key: str) -> dict[str, Any]:
        """Hold every item for the order, or nothing when any item is short."""
        short = self.check_availability(items)["unavailable"]
        if short:
            return {"reserved": False, "reservation_id": None, "order_id": order_id, "items": 0}
        return {
            "reserved": True,
            "reservation_id": f"RES-{_digest(idempotency_key, 12)}",
            "order_id": order_id,
            "items": len(items),
        }

    def release(self, reservation_id: str) -> dict[str, Any]:
        """Give a reservation's stock back (releasing twice is harmless)."""
        return {"reservation_id": reservation_id, "released": True}


class ShippingService:
    """The carrier: quotes and shipments."""

    def quote(self, customer: Order, items: list[Item], options: dict[str, Any]) -> dict[str, Any]:
        expedited = bool(options.get("expedited"))
        address = customer.get("address") or {}
        return {
            "carrier": "FastShip",
            "service": "expedited" if expedited else "standard",
            "cost": EXPEDITED_SHIPPING if expedited else STANDARD_SHIPPING,
            "estimated_days": 2 if expedited else 5,
            "destination": f"{address.get('city')}, {address.get('state')}",
        }

    def create_shipment(
        self, order_id: str, quote: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any]:
        return {
            "shipment_id": f"SHIP-{_digest(idempotency_key, 12)}",
            "order_id": order_id,
            "tracking_number": f"TRK{_digest('tracking:' + idempotency_key, 16)}",
            "carrier": quote["carrier"],
            "service": quote["service"],
            "destination": quote["destination"],
            "estimated_days": quote["estimated_days"],
        }


class PaymentService:
    """The payment gateway, with its ledger of charges keyed by idempotency key."""

    def __init__(self) -> None:
        self._ledger: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # sync methods run in worker threads

    def charge(
        self, order_id: str, payment: dict[str, Any], amount: float, idempotency_key: str
    ) -> dict[str, Any]:
        """Charge ``amount`` once per idempotency key.

        A repeated key returns the original charge (with ``replayed: true``) and charges nothing;
        a repeated key with a different amount is refused.
        """
        with self._lock:
            earlier = self._ledger.get(idempotency_key)
            if earlier is not None:
                if earlier["amount"] != amount:
                    raise IdempotencyConflict(
                        f"idempotency key {idempotency_key} was used for a charge of "
                        f"{earlier['amount']}; refusing a charge of {amount} with it"
                    )
                return {**earlier, "replayed": True}  # the original charge, marked as a replay
            token = payment.get("token")
            if token == "tok_declined":
                raise CardDeclined("card declined by the issuer (insufficient funds)")
            charge = {
                "payment_id": f"PAY-{_digest(idempotency_key, 16)}",
                "order_id": order_id,
                "amount": amount,
                "currency": "USD",
                "method": payment.get("method", "card"),
                "status": "captured",
                "replayed": False,
            }
            self._ledger[idempotency_key] = charge
        if token == "tok_flaky_gateway":
            # The charge is in the ledger, but its answer never reaches the caller; only the
            # idempotency key keeps the retry from charging the card a second time.
            raise ConnectionError("connection to the payment gateway lost before it answered")
        return dict(charge)

    def list_charges(self, order_id: str | None = None) -> list[dict[str, Any]]:
        """Every charge made, optionally only those of one order."""
        with self._lock:
            return [dict(c) for c in self._ledger.values() if order_id in (None, c["order_id"])]
