"""The parallel fetch example's services: async stand-ins for remote APIs, with fixed latencies
so that the example behaves the same on every run."""

from __future__ import annotations

import asyncio
from typing import Any

#: Seconds each simulated API takes to answer.
PROFILE_LATENCY = 0.05
ORDERS_LATENCY = 0.05
NOTIFICATIONS_LATENCY = 0.05
PRIMARY_MIRROR_LATENCY = 2.0  # the primary mirror is having a slow day
BACKUP_MIRROR_LATENCY = 0.05


class UserService:
    async def get_profile(self, user_id: str) -> dict[str, Any]:
        await asyncio.sleep(PROFILE_LATENCY)
        return {"id": user_id, "name": f"User {user_id}", "email": f"{user_id.lower()}@example.com"}


class OrderService:
    async def get_recent(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        await asyncio.sleep(ORDERS_LATENCY)
        return [{"id": f"ORD-{i}", "amount": 10.0 * i} for i in range(1, limit + 1)]


class NotificationService:
    async def get_unread(self, user_id: str) -> list[dict[str, Any]]:
        await asyncio.sleep(NOTIFICATIONS_LATENCY)
        return [{"id": "NOTIF-1", "message": "Your order ORD-1 has shipped"}]


class RecommendationService:
    """Two mirrors of the same API; the workflow keeps whichever answers first."""

    async def from_primary(self, user_id: str) -> dict[str, Any]:
        await asyncio.sleep(PRIMARY_MIRROR_LATENCY)
        return {"source": "primary", "products": ["PROD-001", "PROD-004"]}

    async def from_backup(self, user_id: str) -> dict[str, Any]:
        await asyncio.sleep(BACKUP_MIRROR_LATENCY)
        return {"source": "backup", "products": ["PROD-001", "PROD-004"]}
