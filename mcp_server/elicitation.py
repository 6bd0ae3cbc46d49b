"""Asking the user directly when a run stops at an approval, where the client supports it.

Two ways, by protocol era:

* handshake era (up to 2025-11-25): the server sends ``elicitation/create`` while the tool call is
  open and waits for the answer;
* 2026-07-28: servers send no requests; the tool call answers ``input_required`` with the
  question and a request state naming the execution, and the client calls the same tool again
  with the answer (the SDK seals the state, so a client cannot forge it).

Either way an accepted answer resumes the execution; a declined or cancelled one leaves it halted,
and the tool answers with the halt (so ``resume_execution`` can still decide later).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

if TYPE_CHECKING:
    from mcp.server import ServerRequestContext

    from dwf import RunResult

__all__ = ["APPROVAL_KEY", "ask", "decision", "input_required", "is_approval", "mode", "read_state"]

logger = logging.getLogger("dwf.mcp")

APPROVAL_KEY = "approval"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {
            "type": "boolean",
            "title": "Approve",
            "description": "Checked approves; unchecked rejects",
        }
    },
    "required": ["approved"],
}

Mode = Literal["request", "input_required"]


def is_approval(result: RunResult) -> bool:
    return result.halted and ((result.halt or {}).get("data") or {}).get("type") == "approval"


def mode(ctx: ServerRequestContext[Any, Any]) -> Mode | None:
    """How this client can be asked, or ``None`` when it cannot (no form elicitation)."""
    caps = ctx.session.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return None
    if ctx.session.can_send_request:
        return "request"
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return "input_required"
    return None


def _message(result: RunResult) -> str:
    halt = result.halt or {}
    data = halt.get("data") or {}
    prompt = halt.get("prompt") or data.get("prompt") or "Approve?"
    lines = [f"{prompt}", f"(workflow '{result.workflow_id}', execution {result.execution_id})"]
    if data.get("context") is not None:
        context = json.dumps(data["context"], indent=2, ensure_ascii=False, default=str)
        lines.append(context[:4000])
    return "\n".join(lines)


def decision(answer: Any) -> bool | None:
    """``True``/``False`` from an accepted answer; ``None`` when declined, cancelled or unclear."""
    if getattr(answer, "action", None) != "accept":
        return None
    value = (getattr(answer, "content", None) or {}).get("approved")
    if isinstance(value, str):
        value = {"true": True, "false": False}.get(value.strip().lower())
    return value if isinstance(value, bool) else None


async def ask(ctx: ServerRequestContext[Any, Any], result: RunResult) -> bool | None:
    """Ask over the open tool call (handshake era); ``None`` if there is no usable answer."""
    try:
        answer = await ctx.session.elicit_form(
            _message(result), SCHEMA, related_request_id=ctx.request_id
        )
    except MCPError as exc:
        logger.info("elicitation for %s not answered: %s", result.execution_id, exc)
        return None
    return decision(answer)


def input_required(result: RunResult) -> types.InputRequiredResult:
    """The 2026-07-28 answer: ask, and come back with the answer and this state."""
    state = {"execution_id": result.execution_id, "path": (result.halt or {}).get("path")}
    request = types.ElicitRequest(
        params=types.ElicitRequestFormParams(message=_message(result), requested_schema=SCHEMA)
    )
    return types.InputRequiredResult(
        input_requests={APPROVAL_KEY: request}, request_state=json.dumps(state)
    )


def read_state(request_state: str) -> tuple[str, str | None]:
    """The execution id and halt path a request state names (the SDK verified its seal)."""
    try:
        state = json.loads(request_state)
        execution_id = state["execution_id"]
    except (ValueError, KeyError, TypeError):
        raise MCPError(types.INVALID_PARAMS, "Invalid or expired requestState") from None
    if not isinstance(execution_id, str):
        raise MCPError(types.INVALID_PARAMS, "Invalid or expired requestState")
    path = state.get("path")
    return execution_id, path if isinstance(path, str) else None
