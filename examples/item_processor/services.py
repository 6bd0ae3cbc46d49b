"""The item processor example's service: pure functions over a cart (no state kept here; the
workflow carries the cart from one loop iteration to the next)."""

from __future__ import annotations

from typing import Any

Cart = dict[str, Any]


class ItemProcessor:
    """Prices items and sums carts."""

    @staticmethod
    def add_to_cart(cart: Cart, item: dict[str, Any], budget: float) -> dict[str, Any]:
        """The cart with ``item`` added, and whether that cart stays within ``budget``."""
        subtotal = round(item["quantity"] * item["price"], 2)
        total = round(cart["total"] + subtotal, 2)
        line = {"name": item["name"], "quantity": item["quantity"], "subtotal": subtotal}
        return {
            "fits": total <= budget,
            "subtotal": subtotal,
            "cart": {"items": [*cart["items"], line], "count": cart["count"] + 1, "total": total},
        }

    @staticmethod
    def summarize(cart: Cart) -> dict[str, Any]:
        """Count, total and average line subtotal of a cart (average 0 when it is empty)."""
        count: int = cart["count"]
        total = float(cart["total"])
        return {"count": count, "total": total, "average": round(total / count, 2) if count else 0}
