"""What an MCP tool returned, as plain JSON data that can be journaled and read back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolResult"]


@dataclass(frozen=True)
class ToolResult:
    """The result of one ``tools/call``.

    ``content`` is the list of content blocks as the server sent them (JSON, camelCase keys:
    ``{"type": "text", "text": ...}``, ``{"type": "image", "data": ..., "mimeType": ...}``, ...);
    ``structured`` is the ``structuredContent`` (``None`` when the tool sent none); ``is_error``
    is true when the tool reported a failure, whose explanation is then in :attr:`text`.
    """

    content: list[dict[str, Any]] = field(default_factory=list)
    structured: Any = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The content as text: text blocks (and text resources) joined by newlines; other
        blocks are named in brackets, e.g. ``[image: image/png]``."""
        return "\n".join(_block_text(block) for block in self.content)

    @property
    def value(self) -> Any:
        """The structured content when the tool sent some, else :attr:`text` (what the ``mcp``
        step returns)."""
        return self.structured if self.structured is not None else self.text

    def model_text(self) -> str:
        """What to show a model: :attr:`text`, or the structured content as JSON when the tool
        sent no content blocks."""
        text = self.text
        if not text and self.structured is not None:
            return json.dumps(self.structured, ensure_ascii=False)
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form for journals; :meth:`from_dict` reads it back."""
        return {"content": self.content, "structured": self.structured, "is_error": self.is_error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolResult:
        return cls(
            content=list(data.get("content") or []),
            structured=data.get("structured"),
            is_error=bool(data.get("is_error", False)),
        )


def _block_text(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind in ("image", "audio"):
        return f"[{kind}: {block.get('mimeType', 'unknown type')}]"
    if kind == "resource_link":
        return f"[resource link: {block.get('uri', '?')}]"
    if kind == "resource":
        resource = block.get("resource") or {}
        if isinstance(resource, Mapping) and isinstance(resource.get("text"), str):
            return str(resource["text"])
        uri = resource.get("uri", "?") if isinstance(resource, Mapping) else "?"
        return f"[resource: {uri}]"
    return f"[{kind or 'unknown'} content]"
