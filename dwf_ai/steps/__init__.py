"""The step types of the AI extension, one per file."""

from __future__ import annotations

from dwf_ai.steps._loop import AIRuntime, MaxTurnsExceeded
from dwf_ai.steps.agent import AgentConfig, AgentStep
from dwf_ai.steps.handoff import HandoffConfig, HandoffStep

__all__ = [
    "AIRuntime",
    "AgentConfig",
    "AgentStep",
    "HandoffConfig",
    "HandoffStep",
    "MaxTurnsExceeded",
]
