"""The agent loop, shared by the ``agent`` and ``handoff`` steps, journaled turn by turn.

The conversation is the step's journal, in the step's private durable state:

* ``n``: how many entries ``m0 .. m{n-1}`` there are;
* ``m{i}``: the prompt, a model response (the assistant message, the agent that answered, its
  token usage), a correction sent back to the model, or a handoff to another agent;
* ``r{i}.{k}``: the result of tool call ``k`` of the response ``m{i}``;
* ``a{i}.{k}``: a person's decision on that call when its tool needs approval;
* ``awaiting``: the call the execution halted for;
* ``mcp.{agent}``: the tools of the agent's MCP servers, listed once (see ``_mcp_tools``);
* ``g.input``, ``g.output``: the verdicts of the input and output guardrails (``_guard``).

Each entry is written once and committed at once (``await ctx.save()``), so a checkpoint holds
only what is new and a crash or a halt mid-loop continues where it stopped: the model is not called
again for a response already journaled and a tool that returned is not run again. The system
message is not journaled: it is the current agent's instructions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema

from dwf.errors import NonRetryableError, StepFailed
from dwf.extensions import Halt
from dwf.runtime import StepContext
from dwf_ai.definitions import AgentDef, agents_of, tools_of
from dwf_ai.guardrails.checks import Check
from dwf_ai.mcp.config import mcp_servers_of
from dwf_ai.mcp.errors import MCPClientError, MCPConfigError
from dwf_ai.mcp.toolset import MCPTool, list_mcp_tools
from dwf_ai.models.base import (
    Message,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    ToolCall,
)
from dwf_ai.steps._calls import (
    BoundTool,
    MCPToolMisconfigured,
    MCPToolUnavailable,
    PreparedCall,
    bind_tools,
    first_handoff,
    invoke,
    is_misconfiguration,
    prepare,
    run_all,
)
from dwf_ai.steps._guard import Blocked, answer_text, check_stage, clear_failure, restore_answer
from dwf_ai.steps._runtime import AIRuntime

__all__ = [
    "AIRuntime",
    "AgentLoop",
    "LoopResult",
    "MaxTurnsExceeded",
    "record_blocked",
    "record_result",
]

logger = logging.getLogger("dwf.ai")

DEFAULT_MAX_TURNS = 10

#: Where a step's output came from: the answer's text, a JSON object answer, an answer checked
#: against the output schema, the output tool's arguments, or the last text before a handoff
#: left to the workflow.
Source = Literal["text", "json", "schema", "tool", "handoff"]


class MaxTurnsExceeded(NonRetryableError):
    """An agent used all its model turns without giving a final answer."""


@dataclass
class LoopResult:
    """How an agent loop ended: the answer, the agent that gave it, and what it cost."""

    answer: Any
    agent: str
    source: Source
    usage: dict[str, int]
    turns: int
    tool_calls: int
    tool_errors: int
    invalid_arguments: int
    handoffs: list[str]
    handoff_to: str | None = None
    #: The guardrail verdicts (``input``, ``output``) for the audit entry.
    guardrails: dict[str, Any] = field(default_factory=dict)


class AgentLoop:
    """Drive one agent conversation (and its handoffs) to a final answer or a halt."""

    def __init__(
        self,
        ctx: StepContext,
        runtime: AIRuntime,
        *,
        step_id: str,
        agent_id: str,
        prompt: Callable[[], str],
        max_turns: int | None = None,
        max_handoffs: int = 5,
        output_schema: dict[str, Any] | None = None,
        output_tool: str | None = None,
        input_guardrails: Sequence[Check] = (),
        output_guardrails: Sequence[Check] = (),
    ) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.step_id = step_id
        self.agents = agents_of(ctx.workflow)
        self.workflow_tools = tools_of(ctx.workflow)
        start = self.agents.get(agent_id)
        if start is None:
            known = ", ".join(self.agents) or "none"
            raise NonRetryableError(
                f"agent '{agent_id}' is not defined in this workflow; agents: {known}",
                step=step_id,
            )
        self.start = start
        self.prompt = prompt
        self.max_turns = max_turns or start.max_turns or DEFAULT_MAX_TURNS
        self.max_handoffs = max_handoffs
        self.output_schema = output_schema
        self.output_tool = output_tool
        self.input_guardrails = list(input_guardrails)
        self.output_guardrails = list(output_guardrails)
        self._mcp: dict[str, list[MCPTool]] = {}
        self._lock = asyncio.Lock()
        count: int = ctx.state_get("n", 0)
        self.entries: list[dict[str, Any]] = [ctx.state_get(f"m{i}") for i in range(count)]

    # -- the journal

    def _append(self, entry: dict[str, Any]) -> int:
        index = len(self.entries)
        self.ctx.state_set(f"m{index}", entry)
        self.entries.append(entry)
        self.ctx.state_set("n", index + 1)
        return index

    def _result(self, i: int, k: int) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.ctx.state_get(f"r{i}.{k}")
        return found

    async def _save(self) -> None:
        async with self._lock:
            await self.ctx.save()

    @property
    def agent(self) -> AgentDef:
        """The agent holding the conversation now (the last handoff's target)."""
        current = self.start.id
        for entry in self.entries:
            if entry["kind"] == "handoff":
                current = entry["to"]
        return self.agents[current]

    # -- the loop

    async def run(self) -> LoopResult | Halt | Blocked:
        if not self.entries:
            text = self.prompt()
            checks = [*self.start.input_guardrails, *self.input_guardrails]
            verdict = await check_stage(
                self.ctx,
                "input",
                checks,
                text,
                self.runtime.moderator,
                agent=self.start.id,
                save=self._save,
            )
            if verdict is not None:
                if not verdict["passed"]:
                    return Blocked("input", verdict, self.start.id, self._verdicts())
                text = verdict["text"]  # what the model sees: redacted when a check masked it
            message = {"role": "user", "content": text}
            self._append({"kind": "prompt", "agent": self.start.id, "message": message})
            self._emit("agent.started", agent=self.start.id, model=self.start.model)
        while True:
            i = len(self.entries) - 1
            last = self.entries[i]
            if last["kind"] == "response":
                calls = [ToolCall(**c) for c in last["message"].get("tool_calls") or ()]
                if not calls:
                    done = self._final(last)
                    if done is not None:
                        return await self._check_answer(done)
                    continue
                halted = await self._run_calls(i, last["agent"], calls)
                if halted is not None:
                    return halted
                ended = await self._after_calls(i, last, calls)
                if ended is not None:
                    return await self._check_answer(ended)
            await self._call_model()

    async def _check_answer(self, result: LoopResult) -> LoopResult | Blocked:
        """The output guardrails (the answering agent's, then the step's) on the answer."""
        checks = [*self.agents[result.agent].output_guardrails, *self.output_guardrails]
        verdict = await check_stage(
            self.ctx,
            "output",
            checks,
            answer_text(result.answer),
            self.runtime.moderator,
            agent=result.agent,
            save=self._save,
        )
        result.guardrails = self._verdicts()
        if verdict is None:
            return result
        if not verdict["passed"]:
            return Blocked("output", verdict, result.agent, result.guardrails, result)
        if verdict["redacted"]:
            result.answer = restore_answer(result.answer, verdict["text"])
        return result

    def _verdicts(self) -> dict[str, Any]:
        """The journaled guardrail verdicts, without the checked text, for the audit entry."""
        found: dict[str, Any] = {}
        for stage in ("input", "output"):
            verdict = self.ctx.state_get(f"g.{stage}")
            if verdict is not None:
                found[stage] = {k: v for k, v in verdict.items() if k != "text"}
        return found

    async def _call_model(self) -> None:
        turns = sum(1 for e in self.entries if e["kind"] == "response")
        agent = self.agent
        if turns >= self.max_turns:
            raise MaxTurnsExceeded(
                f"agent '{agent.id}' reached max_turns ({self.max_turns}) without a final answer; "
                "raise 'max_turns' on the step or the agent, or look at the agent.tool_result "
                "events for the tool results it keeps reacting to",
                step=self.step_id,
            )
        tools = await self._tools_for(agent)
        try:
            model = self.runtime.model_for(agent)
        except ModelError as exc:
            raise NonRetryableError(
                f"agent '{agent.id}': {exc}", step=self.step_id, code=exc.code
            ) from exc
        request = ModelRequest(
            model=model.name,
            messages=self._messages(agent),
            tools=[t.spec for t in tools.values()],
            settings=ModelSettings(
                temperature=agent.temperature,
                top_p=agent.top_p,
                max_tokens=agent.max_tokens,
                stop=tuple(agent.stop) if agent.stop is not None else None,
                extra=dict(agent.model_settings),
            ),
            output_schema=self._schema(agent),
        )
        try:
            response = await model.respond(request)
        except ModelError as exc:
            message = f"agent '{agent.id}': model '{model.name}' failed: {exc}"
            if exc.retryable:
                raise StepFailed(message, step=self.step_id, code=exc.code) from exc
            raise NonRetryableError(message, step=self.step_id, code=exc.code) from exc
        calls = self._unique_ids(response.tool_calls, turns)
        answer = ModelResponse(content=response.content, tool_calls=calls).to_message()
        entry = {
            "kind": "response",
            "agent": agent.id,
            "model": response.model or model.name,
            "message": answer,
            "usage": response.usage.to_dict(),
            "finish_reason": response.finish_reason,
        }
        self._append(entry)
        await self._save()
        logger.debug("agent %s turn %d: %d tool call(s)", agent.id, turns, len(calls))
        self._emit(
            "agent.model_response",
            agent=agent.id,
            model=entry["model"],
            turn=turns,
            content=response.content,
            tool_calls=[c.to_message_part() for c in calls],
            usage=entry["usage"],
            finish_reason=response.finish_reason,
        )

    def _unique_ids(self, calls: list[ToolCall], turn: int) -> list[ToolCall]:
        """Tool-call ids, unique within the step: they key results and idempotency keys."""
        used = {
            c["id"]
            for e in self.entries
            if e["kind"] == "response"
            for c in e["message"].get("tool_calls") or ()
        }
        unique = []
        for k, call in enumerate(calls):
            call_id = call.id or f"call_{turn}_{k}"
            while call_id in used:
                call_id = f"{call_id}_{turn}"
            used.add(call_id)
            unique.append(ToolCall(call_id, call.name, call.arguments or "{}"))
        return unique

    def _messages(self, agent: AgentDef) -> list[Message]:
        messages: list[Message] = []
        if agent.instructions:
            messages.append({"role": "system", "content": agent.instructions})
        for i, entry in enumerate(self.entries):
            if entry["kind"] == "handoff":
                continue
            # Copies: a provider that edits its request must not edit the journal.
            messages.append(dict(entry["message"]))
            for k in range(len(entry["message"].get("tool_calls") or ())):
                result = self._result(i, k)
                if result is not None:
                    messages.append(dict(result["message"]))
        return messages

    def _schema(self, agent: AgentDef) -> dict[str, Any] | None:
        return self.output_schema if self.output_schema is not None else agent.output_schema

    # -- tools

    async def _tools_for(self, agent: AgentDef) -> dict[str, BoundTool]:
        return bind_tools(
            agent,
            self.agents,
            self.workflow_tools,
            self.runtime.tools,
            step_id=self.step_id,
            mcp_tools=await self._mcp_tools(agent),
        )

    async def _mcp_tools(self, agent: AgentDef) -> list[MCPTool]:
        """The tools of the agent's MCP servers, listed once and journaled: a resumed step
        offers the model exactly the tools (and names) it offered before."""
        if not agent.mcp_servers:
            return []
        tools = self._mcp.get(agent.id)
        if tools is not None:
            return tools
        listed: list[dict[str, Any]] | None = self.ctx.state_get(f"mcp.{agent.id}")
        if listed is None:
            reserved = [*agent.tools, *(h.tool_name for h in agent.handoffs)]
            if agent.file_search is not None:
                reserved.append(agent.file_search.name)
            try:
                found = await list_mcp_tools(
                    self.runtime.pool(),
                    agent.mcp_servers,
                    servers=mcp_servers_of(self.ctx.workflow),
                    reserved=reserved,
                )
            except MCPConfigError as exc:
                raise MCPToolMisconfigured(
                    f"agent '{agent.id}': {exc.message}",
                    step=self.step_id,
                    server=getattr(exc, "server", None),
                ) from exc
            except MCPClientError as exc:
                raise MCPToolUnavailable(
                    f"agent '{agent.id}' could not list the tools of its MCP servers: "
                    f"{exc.message}",
                    step=self.step_id,
                    server=getattr(exc, "server", None),
                ) from exc
            listed = [t.to_dict() for t in found]
            self.ctx.state_set(f"mcp.{agent.id}", listed)
            await self._save()
        tools = [MCPTool.from_dict(t) for t in listed]
        self._mcp[agent.id] = tools
        return tools

    def _handoffs_done(self) -> int:
        return sum(1 for e in self.entries if e["kind"] == "handoff")

    async def _run_calls(self, i: int, agent_id: str, calls: list[ToolCall]) -> Halt | None:
        """Run the calls of response ``i`` that have no result yet: the others concurrently,
        then those that need approval, one decision at a time."""
        pending = [k for k in range(len(calls)) if self._result(i, k) is None]
        if not pending:
            return None
        tools = await self._tools_for(self.agents[agent_id])
        chosen = first_handoff(calls, tools)
        prepared = {k: prepare(calls[k], tools) for k in pending}
        for k, item in prepared.items():
            if item.tool is not None and item.tool.handoff_to is not None and item.error is None:
                target = item.tool.handoff_to
                if k != chosen:
                    item.result = (
                        "Error: only one handoff per turn is possible; this one was ignored."
                    )
                    item.error = "ignored_handoff"
                elif self._handoffs_done() >= self.max_handoffs:
                    item.result = f"Handing the conversation over to agent '{target}'."
                else:
                    item.result = f"Transferred to agent '{target}', who now continues."
        now = [k for k in pending if not prepared[k].waits_for_approval]
        await run_all(self._execute(i, k, agent_id, prepared[k]) for k in now)
        for k in pending:
            item = prepared[k]
            if k in now:
                continue
            decision: dict[str, Any] | None = self.ctx.state_get(f"a{i}.{k}")
            if decision is None:
                resume = self.ctx.resume if self.ctx.state_get("awaiting") == f"{i}.{k}" else None
                if resume is None or resume.approved is None:
                    return self._ask(i, k, agent_id, item)
                decision = {"approved": resume.approved, "by": resume.by, "note": resume.response}
                self.ctx.state_set(f"a{i}.{k}", decision)
                self.ctx.state_delete("awaiting")
                await self._save()
            if not decision["approved"]:
                note = decision.get("note")
                reason = f" They said: {note}" if isinstance(note, str) and note else ""
                item.result = (
                    f"The call of tool '{item.call.name}' was not approved by a person and did "
                    f"not run.{reason}"
                )
                item.error = "rejected"
            await self._execute(i, k, agent_id, item)
        return None

    def _ask(self, i: int, k: int, agent_id: str, item: PreparedCall) -> Halt:
        self.ctx.state_set("awaiting", f"{i}.{k}")
        name = item.call.name
        data = {
            "type": "tool_approval",
            "tool": name,
            "arguments": item.arguments,
            "tool_call_id": item.call.id,
            "agent": agent_id,
            "step": self.step_id,
        }
        shown = json.dumps(item.arguments, ensure_ascii=False, sort_keys=True)
        prompt = f"Agent '{agent_id}' wants to call tool '{name}' with {shown}. Approve?"
        return Halt(data=data, prompt=prompt, reenter=True)

    async def _execute(self, i: int, k: int, agent_id: str, item: PreparedCall) -> None:
        call = item.call
        if item.result is None:
            assert item.tool is not None
            self._emit(
                "agent.tool_call",
                agent=agent_id,
                tool=call.name,
                tool_call_id=call.id,
                arguments=item.arguments,
            )
            key = f"{self.ctx.idempotency_key}:{call.id}"
            try:
                item.result, item.error = await invoke(
                    self.ctx, item, key, self.runtime, step_id=self.step_id
                )
            except (MCPToolUnavailable, MCPToolMisconfigured):
                raise
            except Exception as exc:  # a failing tool is news for the model, not a crash
                if is_misconfiguration(exc):
                    raise NonRetryableError(
                        f"tool '{call.name}' of agent '{agent_id}' cannot run: {exc}",
                        step=self.step_id,
                    ) from exc
                logger.warning("tool %s failed: %s", call.name, type(exc).__name__)
                item.result = f"Error: tool '{call.name}' failed: {type(exc).__name__}: {exc}"
                item.error = "failed"
        message = {
            "role": "tool",
            "tool_call_id": call.id,
            "name": call.name,
            "content": item.result,
            "is_error": item.error is not None,
        }
        self.ctx.state_set(f"r{i}.{k}", {"message": message, "error": item.error})
        await self._save()
        self._emit(
            "agent.tool_result",
            agent=agent_id,
            tool=call.name,
            tool_call_id=call.id,
            content=item.result,
            is_error=item.error is not None,
            error=item.error,
        )

    async def _after_calls(
        self, i: int, response: dict[str, Any], calls: list[ToolCall]
    ) -> LoopResult | None:
        """Once every call of a turn has its result: end with the output tool's arguments, or
        hand the conversation to another agent (in this step, or after it past the limit)."""
        if self.output_tool is not None:
            for k in reversed(range(len(calls))):
                result = self._result(i, k)
                if calls[k].name == self.output_tool and result and not result["error"]:
                    return self._result_of(calls[k].parsed_arguments(), "tool")
        tools = await self._tools_for(self.agents[response["agent"]])
        chosen = first_handoff(calls, tools)
        if chosen is None:
            return None
        target = tools[calls[chosen].name].handoff_to
        assert target is not None
        source = response["agent"]
        if self._handoffs_done() >= self.max_handoffs:
            # Past the limit the workflow decides: the step ends with `_handoff_to` set.
            self._emit("agent.handoff", from_agent=source, to_agent=target, deferred=True)
            content = response["message"].get("content") or ""
            return self._result_of(content, "handoff", handoff_to=target)
        self._append({"kind": "handoff", "from": source, "to": target})
        await self._save()
        self._emit("agent.handoff", from_agent=source, to_agent=target, deferred=False)
        return None

    # -- the end

    def _final(self, response: dict[str, Any]) -> LoopResult | None:
        """The answer of a response without tool calls, or ``None`` after asking the model to
        correct an answer that does not match the output schema."""
        content = response["message"].get("content") or ""
        schema = self._schema(self.agents[response["agent"]])
        if schema is None:
            parsed = _json_object(content)
            if parsed is not None:
                return self._result_of(parsed, "json")
            return self._result_of(content, "text")
        try:
            value = json.loads(_unfence(content))
        except ValueError as exc:
            problem = f"it is not valid JSON ({exc})"
        else:
            errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(value))
            if not errors:
                return self._result_of(value, "schema")
            problem = "; ".join(
                f"{'/'.join(str(p) for p in e.path) or '(answer)'}: {e.message}" for e in errors[:5]
            )
        feedback = (
            f"Your answer does not match the required JSON Schema: {problem}. Answer again with "
            "only a JSON value that matches it."
        )
        self._append({"kind": "feedback", "message": {"role": "user", "content": feedback}})
        return None

    def _result_of(
        self,
        answer: Any,
        source: Source,
        *,
        handoff_to: str | None = None,
    ) -> LoopResult:
        usage = {"input_tokens": 0, "output_tokens": 0, "model_calls": 0}
        calls = errors = invalid = 0
        for i, entry in enumerate(self.entries):
            if entry["kind"] != "response":
                continue
            usage["input_tokens"] += int(entry["usage"].get("input_tokens", 0))
            usage["output_tokens"] += int(entry["usage"].get("output_tokens", 0))
            usage["model_calls"] += 1
            for k in range(len(entry["message"].get("tool_calls") or ())):
                calls += 1
                result = self._result(i, k)
                if result is not None and result["error"]:
                    errors += 1
                    invalid += result["error"] == "invalid_arguments"
        handoffs = [f"{e['from']}->{e['to']}" for e in self.entries if e["kind"] == "handoff"]
        return LoopResult(
            answer=answer,
            agent=self.agent.id,
            source=source,
            usage=usage,
            turns=usage["model_calls"],
            tool_calls=calls,
            tool_errors=errors,
            invalid_arguments=invalid,
            handoffs=handoffs,
            handoff_to=handoff_to,
        )

    def _emit(self, event_type: str, **data: Any) -> None:
        self.ctx.emit(event_type, **data)


def _unfence(text: str) -> str:
    """The inside of one fenced code block (```json ... ```), or the text itself."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and stripped.count("```") == 2:
        body = stripped[3:-3]
        first, _, rest = body.partition("\n")
        return (rest if first.strip().isalpha() or not first.strip() else body).strip()
    return stripped


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object an answer consists of (possibly fenced), else ``None``."""
    body = _unfence(text)
    if not body.startswith("{"):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def record_result(ctx: StepContext, output: str | None, result: LoopResult) -> dict[str, Any]:
    """Store a finished loop's answer and bookkeeping variables; return the audit output.

    Sets ``output`` (when given), ``_current_agent`` (the agent that answered) and ``_usage``
    (the execution's running token total); sets ``_handoff_to`` when a handoff past the limit is
    left to the workflow, and clears a stale one otherwise.
    """
    if output is not None:
        ctx.set(output, result.answer)
    ctx.set("_current_agent", result.agent)
    if result.handoff_to is not None:
        ctx.set("_handoff_to", result.handoff_to)
    elif ctx.has("_handoff_to"):
        ctx.delete("_handoff_to")
    _add_usage(ctx, result.usage)
    if result.guardrails:
        clear_failure(ctx)
    audit = _audit(result)
    ctx.emit("agent.completed", **audit)
    return audit


def record_blocked(ctx: StepContext, blocked: Blocked) -> dict[str, Any]:
    """Record a loop a guardrail stopped: nothing goes to ``output``; an answer that failed its
    output guardrails still counts in ``_usage`` and sets ``_current_agent``. Returns the audit
    entry (the caller routes the failure)."""
    audit: dict[str, Any] = {"agent": blocked.agent, "output": None, "blocked": blocked.stage}
    if blocked.result is not None:
        ctx.set("_current_agent", blocked.result.agent)
        _add_usage(ctx, blocked.result.usage)
        audit = {**_audit(blocked.result), "output": None, "blocked": blocked.stage}
    audit["guardrails"] = blocked.guardrails
    return audit


def _add_usage(ctx: StepContext, usage: dict[str, int]) -> None:
    total = ctx.get("_usage")
    total = total if isinstance(total, dict) else {}
    ctx.set("_usage", {k: int(total.get(k) or 0) + v for k, v in usage.items()})


def _audit(result: LoopResult) -> dict[str, Any]:
    audit = {
        "agent": result.agent,
        "output": result.answer,
        "output_from": result.source,
        "usage": result.usage,
        "turns": result.turns,
        "tool_calls": result.tool_calls,
        "tool_errors": result.tool_errors,
        "invalid_arguments": result.invalid_arguments,
        "handoffs": result.handoffs,
        "handoff_to": result.handoff_to,
    }
    if result.guardrails:
        audit["guardrails"] = result.guardrails
    return audit
