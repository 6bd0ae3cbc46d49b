"""Models: a small provider-neutral protocol (:mod:`dwf_ai.models.base`) and its providers.

* :class:`OpenAIModel` — OpenAI and every OpenAI-compatible server (vLLM, Ollama, LiteLLM)
  through the Chat Completions API of the ``openai`` SDK.
* :class:`AnthropicModel` — Claude through the Messages API of the ``anthropic`` SDK.
* :func:`resolve_model` — from a name in a workflow to a model.
* :class:`ProviderConfig` — keys, endpoints, timeouts and retries (environment by default).

Test doubles (a scripted model, a function model, a fake provider server) are in
:mod:`dwf_ai.testing`. Importing this package imports neither SDK.
"""

from __future__ import annotations

from dwf_ai.models._resolve import resolve_model
from dwf_ai.models.anthropic import AnthropicModel
from dwf_ai.models.base import (
    Message,
    Model,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    ModerationResult,
    Moderator,
    ToolCall,
    ToolSpec,
    Usage,
)
from dwf_ai.models.config import ProviderConfig, ProviderSettings
from dwf_ai.models.openai import OpenAIModel

__all__ = [
    "AnthropicModel",
    "Message",
    "Model",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "ModerationResult",
    "Moderator",
    "OpenAIModel",
    "ProviderConfig",
    "ProviderSettings",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "resolve_model",
]
