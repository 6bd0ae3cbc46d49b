"""dwf_ai: the AI extension of dwf: agents with tools, structured output, approvals, handoffs.

It plugs into dwf only through dwf's public extension API::

    import dwf
    from dwf_ai import AIExtension

    registry = dwf.default_registry()
    registry.install(AIExtension())
    workflow = dwf.load_workflow(path, registry=registry)

Importing ``dwf_ai`` is light: the provider SDKs load when a model is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dwf_ai.definitions import AgentDef, HandoffDef, ToolDef, ToolParam
    from dwf_ai.extension import AIExtension
    from dwf_ai.steps import MaxTurnsExceeded
    from dwf_ai.tools import Tool, ToolRegistry, tool

__all__ = [
    "AIExtension",
    "AgentDef",
    "HandoffDef",
    "MaxTurnsExceeded",
    "Tool",
    "ToolDef",
    "ToolParam",
    "ToolRegistry",
    "tool",
]

_HOMES = {
    "AIExtension": "dwf_ai.extension",
    "AgentDef": "dwf_ai.definitions",
    "HandoffDef": "dwf_ai.definitions",
    "ToolDef": "dwf_ai.definitions",
    "ToolParam": "dwf_ai.definitions",
    "MaxTurnsExceeded": "dwf_ai.steps",
    "Tool": "dwf_ai.tools",
    "ToolRegistry": "dwf_ai.tools",
    "tool": "dwf_ai.tools",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dwf_ai' has no attribute '{name}'")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
