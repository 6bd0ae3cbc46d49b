"""The MCP demo's one service: a sentence from the weather tool's structured result."""

from __future__ import annotations

from typing import Any


class Report:
    """Formats what the MCP tools returned."""

    @staticmethod
    def compose(city: str, weather: dict[str, Any]) -> str:
        return (
            f"{city}: {weather['conditions']}, {weather['temperature']} degrees, "
            f"humidity {weather['humidity']}%"
        )
