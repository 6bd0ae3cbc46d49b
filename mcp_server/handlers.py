"""What each tool does when called: run a workflow, report, resume, cancel, list, call a service.

Every answer about an execution is the same structured content, ``{execution_id, status, output,
halt, error}``, plus a readable text. Mistakes by the caller (bad arguments, unknown execution,
wrong state) are tool errors whose message says what to do; only an unknown tool name is a
protocol error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

import dwf
from mcp_server import _render, elicitation
from mcp_server.tools import ArgumentError, ToolSpec

if TYPE_CHECKING:
    from mcp.server import ServerRequestContext

    from dwf import Event, RunResult
    from mcp_server.executions import Executions

__all__ = ["ToolCalls"]

logger = logging.getLogger("dwf.mcp")

Answer = types.CallToolResult | types.InputRequiredResult
#: Approvals one tool call may ask about in a row (a workflow of many approvals in sequence).
MAX_ELICITATIONS = 20


class _Progress:
    """Turns step events into ``notifications/progress`` for the call being answered (the SDK
    drops them when the caller asked for none)."""

    def __init__(self, ctx: ServerRequestContext[Any, Any]) -> None:
        self.ctx = ctx
        self.count = 0

    async def __call__(self, event: Event) -> None:
        if event.type != "step.started":
            return
        self.count += 1
        message = f"{event.workflow_id}: step {event.step_path} ({event.step_type})"
        try:
            await self.ctx.session.report_progress(self.count, None, message)
        except Exception:  # a closed stream must not stop the run being followed
            logger.debug("progress notification not delivered", exc_info=True)


class ToolCalls:
    """Answers ``tools/call`` for one server.

    Args:
        tools: the tools by name.
        wait: seconds a call waits for a run before answering ``running``.
        elicit: whether approvals may be asked of the user directly.
    """

    def __init__(self, tools: Mapping[str, ToolSpec], *, wait: float, elicit: bool) -> None:
        self.tools = dict(tools)
        self.wait = wait
        self.elicit = elicit

    async def __call__(
        self,
        ctx: ServerRequestContext[Executions, Any],
        params: types.CallToolRequestParams,
    ) -> Answer:
        spec = self.tools.get(params.name)
        if spec is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        executions = ctx.lifespan_context
        try:
            if params.request_state is not None:
                return await self._answered(ctx, executions, params)
            arguments = spec.validate(params.arguments)
            if spec.kind == "workflow":
                return await self._run(ctx, executions, spec, arguments)
            if spec.kind == "declared":
                return await self._declared(executions, spec, arguments)
            return await self._companion(ctx, executions, spec.name, arguments)
        except ArgumentError as exc:
            return _render.error_result(str(exc))
        except dwf.DwfError as exc:
            return _render.error_result(exc.message)

    # ------------------------------------------------------------------------------ run_*

    async def _run(
        self,
        ctx: ServerRequestContext[Executions, Any],
        executions: Executions,
        spec: ToolSpec,
        arguments: dict[str, Any],
    ) -> Answer:
        assert spec.workflow_id is not None
        workflow = executions.workflow(spec.workflow_id)
        progress = _Progress(ctx)
        execution_id = executions.start(workflow, arguments)
        with executions.watch(execution_id) as subscription:  # the task has not started yet
            result = await executions.follow(
                execution_id, self.wait, subscription=subscription, on_event=progress
            )
        logger.info("%s: execution %s is %s", spec.name, execution_id, result.status)
        return await self._settle(ctx, executions, result, progress)

    async def _resume_and_follow(
        self,
        executions: Executions,
        execution_id: str,
        progress: _Progress,
        *,
        approved: bool | None = None,
        response: Any = None,
        by: str | None = None,
    ) -> RunResult:
        with executions.watch(execution_id) as subscription:
            await executions.resume(execution_id, approved=approved, response=response, by=by)
            return await executions.follow(
                execution_id, self.wait, subscription=subscription, on_event=progress
            )

    async def _settle(
        self,
        ctx: ServerRequestContext[Executions, Any],
        executions: Executions,
        result: RunResult,
        progress: _Progress,
    ) -> Answer:
        """Answer with the result; first ask the user about approvals when the client can."""
        for _ in range(MAX_ELICITATIONS):
            if not (self.elicit and elicitation.is_approval(result)):
                break
            how = elicitation.mode(ctx)
            if how is None:
                break
            if how == "input_required":
                return elicitation.input_required(result)
            approved = await elicitation.ask(ctx, result)
            if approved is None:
                break
            try:
                result = await self._resume_and_follow(
                    executions, result.execution_id, progress, approved=approved, by=_who(ctx)
                )
            except dwf.InvalidTransition:  # decided meanwhile through another call
                result = await executions.snapshot(result.execution_id)
        return _render.run_result(result, waited=self.wait)

    async def _answered(
        self,
        ctx: ServerRequestContext[Executions, Any],
        executions: Executions,
        params: types.CallToolRequestParams,
    ) -> Answer:
        """The client came back (2026-07-28) with the user's answer to an approval."""
        assert params.request_state is not None
        execution_id, path = elicitation.read_state(params.request_state)
        result = await executions.snapshot(execution_id)
        answer = (params.input_responses or {}).get(elicitation.APPROVAL_KEY)
        approved = elicitation.decision(answer)
        still_waiting = result.halted and (result.halt or {}).get("path") == path
        if approved is None or not still_waiting:
            return _render.run_result(result, waited=self.wait)
        progress = _Progress(ctx)
        try:
            result = await self._resume_and_follow(
                executions, execution_id, progress, approved=approved, by=_who(ctx)
            )
        except dwf.InvalidTransition:
            return _render.run_result(await executions.snapshot(execution_id), waited=self.wait)
        return await self._settle(ctx, executions, result, progress)

    # ------------------------------------------------------------------------------ companions

    async def _companion(
        self,
        ctx: ServerRequestContext[Executions, Any],
        executions: Executions,
        name: str,
        arguments: dict[str, Any],
    ) -> Answer:
        if name == "list_executions":
            rows = await executions.list(
                workflow_id=arguments.get("workflow_id"),
                status=arguments.get("status"),
                limit=int(arguments.get("limit", 20)),
            )
            return _render.list_result(rows)
        execution_id: str = arguments["execution_id"]
        if name == "get_execution":
            wait = min(float(arguments.get("wait_seconds") or 0), self.wait)
            await executions.record(execution_id)
            with executions.watch(execution_id) as subscription:
                result = await executions.follow(
                    execution_id, wait, subscription=subscription, on_event=_Progress(ctx)
                )
            return _render.run_result(result, waited=wait)
        if name == "cancel_execution":
            result = await executions.cancel(execution_id)
            return _render.run_result(result)
        return await self._resume(ctx, executions, execution_id, arguments)

    async def _resume(
        self,
        ctx: ServerRequestContext[Executions, Any],
        executions: Executions,
        execution_id: str,
        arguments: dict[str, Any],
    ) -> Answer:
        approved = arguments.get("approved")
        has_response = "response" in arguments
        if approved is None and not has_response:
            raise ArgumentError(
                "say how to resume: approved true or false for an approval, or a response for "
                "a halt step"
            )
        record = await executions.record(execution_id)
        kind = ((record.halt or {}).get("data") or {}).get("type")
        if record.status == dwf.Status.HALTED and kind == "approval" and approved is None:
            raise ArgumentError(
                f"execution {execution_id} waits for an approval: pass approved true or false"
            )
        progress = _Progress(ctx)
        result = await self._resume_and_follow(
            executions,
            execution_id,
            progress,
            approved=approved,
            response=arguments.get("response"),
            by=arguments.get("by") or _who(ctx),
        )
        return await self._settle(ctx, executions, result, progress)

    # ------------------------------------------------------------------------------ declared

    async def _declared(
        self, executions: Executions, spec: ToolSpec, arguments: dict[str, Any]
    ) -> Answer:
        assert spec.service is not None
        assert spec.method is not None
        try:
            value = await executions.engine.services.call(spec.service, spec.method, arguments)
        except dwf.DwfError:
            raise
        except Exception as exc:
            logger.info("tool %s: %s.%s raised", spec.name, spec.service, spec.method, exc_info=exc)
            return _render.error_result(
                f"{spec.service}.{spec.method} raised {type(exc).__name__}: {exc}"
            )
        return _render.value_result(value)


def _who(ctx: ServerRequestContext[Any, Any]) -> str:
    """Who decided, for the timeline: the client's name when it gave one."""
    params = ctx.session.client_params
    name = params.client_info.name if params is not None else None
    return f"{name} (MCP)" if name else "MCP client"
