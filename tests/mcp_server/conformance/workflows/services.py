"""Services for the conformance-suite workflows."""

from __future__ import annotations

import asyncio


class Conformance:
    def fail(self) -> None:
        raise RuntimeError("This tool intentionally returns an error for testing")

    async def pause(self) -> str:
        await asyncio.sleep(0.05)
        return "ok"
