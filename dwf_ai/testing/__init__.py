"""Test doubles for dwf_ai, for dwf's tests and for yours.

* :class:`ScriptedModel` — answers with a list of turns; :class:`FunctionModel` — answers with
  ``fn(request)``; :class:`ScriptedModerator` — scripted moderation results. Register them under a
  name (e.g. ``"scripted:triage"``) and workflows use them like any model.
* :class:`FakeProvider` — a local server speaking the OpenAI and Anthropic HTTP APIs (streaming
  included), to test the real SDKs in-process or over a loopback port. Needs ``starlette``
  (and ``uvicorn`` for a port).
* :func:`block_network` — makes real network calls raise in tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dwf_ai.testing.models import (
    FunctionModel,
    ScriptedModel,
    ScriptedModerator,
    ScriptExhaustedError,
    Turn,
)
from dwf_ai.testing.network import NetworkBlockedError, block_network

if TYPE_CHECKING:
    from dwf_ai.testing.fake_server import FakeError, FakeProvider, RecordedRequest

__all__ = [
    "FakeError",
    "FakeProvider",
    "FunctionModel",
    "NetworkBlockedError",
    "RecordedRequest",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ScriptedModerator",
    "Turn",
    "block_network",
]

_FAKE_SERVER = frozenset({"FakeError", "FakeProvider", "RecordedRequest"})


def __getattr__(name: str) -> Any:
    # The fake server needs starlette; import it only when asked for.
    if name in _FAKE_SERVER:
        try:
            from dwf_ai.testing import fake_server
        except ImportError as exc:
            raise ImportError(
                f"dwf_ai.testing.{name} needs starlette ({exc.name} is missing): "
                'pip install "dwf[ai,mcp]"'
            ) from exc
        return getattr(fake_server, name)
    raise AttributeError(f"module 'dwf_ai.testing' has no attribute {name!r}")
