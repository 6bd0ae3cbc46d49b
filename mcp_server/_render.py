"""Readable text for tool results: what a person (or a model) reads beside the structured data."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import mcp_types as types

if TYPE_CHECKING:
    from dwf import RunResult

__all__ = ["error_result", "list_result", "run_result", "text", "value_result"]

_MAX_JSON = 20_000


def _json(value: Any) -> str:
    out = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(out) > _MAX_JSON:
        out = out[:_MAX_JSON] + "\n... (truncated; the structured content has all of it)"
    return out


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def describe(result: RunResult, *, waited: float | None = None) -> str:
    """One paragraph (plus JSON) saying how the execution stands and what to do next."""
    xid = result.execution_id
    workflow = f" of workflow '{result.workflow_id}'" if result.workflow_id else ""
    head = f"Execution {xid}{workflow}"
    if result.status == "completed":
        return f"{head} completed.\nOutput:\n{_json(result.output)}"
    if result.status == "halted":
        halt = result.halt or {}
        data = halt.get("data") or {}
        step = halt.get("step") or halt.get("path") or "?"
        prompt = halt.get("prompt") or data.get("prompt") or data.get("reason") or ""
        if data.get("type") == "approval":
            lines = [f"{head} is waiting for an approval at step '{step}': {prompt}".rstrip()]
            if data.get("context") is not None:
                lines.append(f"Context:\n{_json(data['context'])}")
            if data.get("expires_at"):
                lines.append(f"The request expires at {data['expires_at']}.")
            lines.append(
                f'To decide, call resume_execution with execution_id "{xid}" and approved true '
                "(approve) or false (reject)."
            )
            return "\n".join(lines)
        details = {k: v for k, v in data.items() if k not in ("reason", "halted_at")}
        lines = [f"{head} is halted at step '{step}': {prompt}".rstrip()]
        if details:
            lines.append(f"Data:\n{_json(details)}")
        lines.append(
            f'To continue, call resume_execution with execution_id "{xid}" and a response.'
        )
        return "\n".join(lines)
    if result.status == "failed":
        error = result.error or {}
        where = error.get("step") or error.get("path")
        at = f" at step '{where}'" if where else ""
        return f"{head} failed{at}: {error.get('message') or error.get('type') or 'unknown error'}"
    if result.status == "cancelled":
        return f"{head} was cancelled."
    within = f" within {waited:g} s" if waited is not None else ""
    return (
        f"{head} is still {result.status} (it did not finish or halt{within}); it goes on in the "
        f'server. Call get_execution with execution_id "{xid}" (and wait_seconds) for its result.'
    )


def run_result(result: RunResult, *, waited: float | None = None) -> types.CallToolResult:
    """The tool result for one execution: ``{execution_id, status, output, halt, error}``."""
    return types.CallToolResult(
        content=[text(describe(result, waited=waited))],
        structured_content=result.to_dict(),
        is_error=result.status == "failed",
    )


def list_result(rows: list[dict[str, Any]]) -> types.CallToolResult:
    if rows:
        lines = [
            f"{r['execution_id']}  {r['workflow_id']}  {r['status']}  {r['created_at']}"
            for r in rows
        ]
        body = "\n".join(lines)
    else:
        body = "No executions."
    return types.CallToolResult(content=[text(body)], structured_content={"executions": rows})


def value_result(value: Any) -> types.CallToolResult:
    """A declared tool's return value: text as is, data as JSON, nothing as an empty text."""
    if value is None:
        body = ""
    elif isinstance(value, str):
        body = value
    elif isinstance(value, dict | list | int | float | bool):
        body = _json(value)
    else:
        body = str(value)
    try:
        json.dumps(value)
        structured: Any = {"result": value}
    except (TypeError, ValueError):
        structured = None
    return types.CallToolResult(content=[text(body)], structured_content=structured)


def error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[text(message)], is_error=True)
