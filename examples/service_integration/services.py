"""The service integration example's service: a warehouse API with a fixed stock list.

* ``PROD-001`` (50 in stock), ``PROD-002`` (none) and ``PROD-003`` (10) answer normally;
* ``PROD-004`` is kept in a warehouse that is offline: every call raises a (retryable)
  ``ConnectionError``, so the step is retried and then handed to its ``on_error`` step;
* any other id is unknown, which retrying cannot fix: ``UnknownProduct`` is a
  ``NonRetryableError``, so the step fails at once.

Stock is not decremented: each process starts from the same list, so every run gives the same
answer. A reservation id is derived from the step's idempotency key, so a retried or recovered
``reserve`` returns the same reservation.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dwf import NonRetryableError

_STOCK = {"PROD-001": 50, "PROD-002": 0, "PROD-003": 10}
_OFFLINE = {"PROD-004": "EU-2"}


class UnknownProduct(NonRetryableError):
    """The product does not exist; retrying will not change that."""


class InventoryService:
    """Stock levels and reservations of one warehouse."""

    def check_availability(self, product_id: str, quantity: int) -> dict[str, Any]:
        available = self._stock(product_id)
        return {
            "product_id": product_id,
            "requested": quantity,
            "available": available,
            "in_stock": available >= quantity,
        }

    def reserve(self, product_id: str, quantity: int, idempotency_key: str) -> dict[str, Any]:
        available = self._stock(product_id)
        if available < quantity:
            raise NonRetryableError(
                f"cannot reserve {quantity} of {product_id}: only {available} in stock"
            )
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:8]
        return {
            "reservation_id": f"RES-{digest}",
            "product_id": product_id,
            "quantity": quantity,
            "remaining": available - quantity,
        }

    def _stock(self, product_id: str) -> int:
        if product_id in _OFFLINE:
            raise ConnectionError(f"warehouse {_OFFLINE[product_id]} is not responding")
        if product_id not in _STOCK:
            raise UnknownProduct(f"unknown product '{product_id}'")
        return _STOCK[product_id]
