"""The step types of the AI extension, one per file."""

from __future__ import annotations

from dwf_ai.steps._calls import MCPToolMisconfigured, MCPToolUnavailable
from dwf_ai.steps._guard import AgentGuardrailFailed
from dwf_ai.steps._loop import AIRuntime, MaxTurnsExceeded
from dwf_ai.steps.agent import AgentConfig, AgentStep
from dwf_ai.steps.handoff import HandoffConfig, HandoffStep

__all__ = [
    "AIRuntime",
    "AgentConfig",
    "AgentGuardrailFailed",
    "AgentStep",
    "HandoffConfig",
    "HandoffStep",
    "MCPToolMisconfigured",
    "MCPToolUnavailable",
    "MaxTurnsExceeded",
]
