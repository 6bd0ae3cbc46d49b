"""Approvals asked of the user directly, where the client supports elicitation.

In the handshake era the server sends ``elicitation/create`` during the tool call; at 2026-07-28
it answers ``input_required`` and the SDK client calls again with the answer. Both resume the
execution; a declined question leaves it halted for ``resume_execution``.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from conftest import MakeServer
from mcp.shared.exceptions import MCPError
from mcp_support import connect


def answering(action: str, content: dict[str, Any] | None = None) -> Any:
    asked: list[str] = []

    async def callback(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    callback.asked = asked  # type: ignore[attr-defined]
    return callback


async def test_an_approval_is_asked_directly_and_the_answer_resumes_the_run(
    make_server: MakeServer, mode: str
) -> None:
    callback = answering("accept", {"approved": True})
    async with connect(make_server(), mode, elicitation_callback=callback) as client:
        result = await client.call_tool("run_expense", {"amount": 500, "requester": "Bob"})
    assert result.structured_content["status"] == "completed"
    assert result.structured_content["output"] == {"decision": "approved"}
    (question,) = callback.asked
    assert question.startswith("Approve 500 EUR for Bob?\n(workflow 'expense', execution ")
    assert '"requester": "Bob"' in question


async def test_a_rejection_given_directly_takes_the_reject_path(
    make_server: MakeServer, mode: str
) -> None:
    callback = answering("accept", {"approved": False})
    async with connect(make_server(), mode, elicitation_callback=callback) as client:
        result = await client.call_tool("run_expense", {"amount": 500, "requester": "Bob"})
    assert result.structured_content["output"] == {"decision": "rejected"}


async def test_a_declined_question_leaves_the_execution_halted_for_resume_execution(
    make_server: MakeServer, mode: str
) -> None:
    callback = answering("decline")
    async with connect(make_server(), mode, elicitation_callback=callback) as client:
        result = await client.call_tool("run_expense", {"amount": 500, "requester": "Bob"})
        execution_id = result.structured_content["execution_id"]
        assert result.structured_content["status"] == "halted"
        done = await client.call_tool(
            "resume_execution", {"execution_id": execution_id, "approved": True}
        )
    assert len(callback.asked) == 1
    assert done.structured_content["output"] == {"decision": "approved"}


async def test_without_elicitation_support_the_run_halts(
    make_server: MakeServer, mode: str
) -> None:
    async with connect(make_server(), mode) as client:
        result = await client.call_tool("run_expense", {"amount": 500, "requester": "Bob"})
    assert result.structured_content["status"] == "halted"


async def test_elicitation_can_be_turned_off(make_server: MakeServer, mode: str) -> None:
    callback = answering("accept", {"approved": True})
    server = make_server(elicitation=False)
    async with connect(server, mode, elicitation_callback=callback) as client:
        result = await client.call_tool("run_expense", {"amount": 500, "requester": "Bob"})
    assert result.structured_content["status"] == "halted"
    assert callback.asked == []


async def test_a_halt_step_is_never_elicited(make_server: MakeServer, mode: str) -> None:
    callback = answering("accept", {"approved": True})
    async with connect(make_server(), mode, elicitation_callback=callback) as client:
        result = await client.call_tool("run_ask", {})
    assert result.structured_content["status"] == "halted"
    assert callback.asked == []


async def test_a_forged_request_state_is_refused(make_server: MakeServer) -> None:
    forged = '{"execution_id": "someone-elses"}'
    async with connect(make_server()) as client:  # 2026-07-28: answers carry a request state
        with pytest.raises(MCPError, match="Invalid or expired requestState"):
            await client.call_tool("run_expense", {"amount": 5}, request_state=forged)
