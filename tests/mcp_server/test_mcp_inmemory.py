"""The server through the SDK's in-process client, in both protocol eras."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from conftest import MakeServer
from mcp.shared.exceptions import MCPError
from mcp_support import NESTED, PROTOCOLS, SERVICES, WORKFLOWS, connect

import dwf
from mcp_server import WorkflowServer, load_services, load_workflows


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_the_client_speaks_the_era_it_asked_for(make_server: MakeServer, mode: str) -> None:
    async with connect(make_server(), mode) as client:
        assert client.protocol_version == PROTOCOLS[mode]
        assert client.server_info is not None
        assert client.server_info.name == "dwf"


async def test_every_workflow_is_a_run_tool_with_a_schema_from_its_inputs(
    make_server: MakeServer, mode: str
) -> None:
    async with connect(make_server(), mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {
        "run_ask", "run_expense", "run_failing", "run_greet", "run_slow",
        "get_execution", "resume_execution", "cancel_execution", "list_executions",
    }  # fmt: skip
    greet = tools["run_greet"]
    assert greet.title == "Greet someone"
    assert greet.description is not None
    assert greet.description.startswith("Build a greeting for a person, in three steps.")
    greeting = {"type": "string", "description": "The word to greet with", "default": "Hello"}
    assert greet.input_schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Who to greet"},
            "greeting": greeting,
            "excited": {"type": "boolean"},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    assert greet.output_schema is not None
    assert greet.output_schema["required"] == ["execution_id", "status"]
    assert tools["run_ask"].input_schema == {"type": "object", "properties": {}}
    assert tools["get_execution"].input_schema["required"] == ["execution_id"]


async def test_a_quick_workflow_returns_its_result_as_structured_content_and_text(
    make_server: MakeServer, mode: str
) -> None:
    async with connect(make_server(), mode) as client:
        result = await client.call_tool("run_greet", {"name": "Ada", "greeting": "Hi"})
    assert not result.is_error
    content = result.structured_content
    assert content["status"] == "completed"
    assert content["output"] == {"message": "Hi, Ada!"}
    assert content["halt"] is None
    assert content["error"] is None
    assert set(content) == {"execution_id", "status", "output", "halt", "error"}
    assert f"Execution {content['execution_id']} of workflow 'greet' completed." in text(result)
    assert '"message": "Hi, Ada!"' in text(result)


async def test_defaults_of_inputs_apply_when_arguments_leave_them_out(
    make_server: MakeServer,
) -> None:
    async with connect(make_server()) as client:
        result = await client.call_tool("run_greet", {"name": "Ada"})
    assert result.structured_content["output"] == {"message": "Hello, Ada!"}


async def test_progress_notifications_report_each_step(make_server: MakeServer, mode: str) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with connect(make_server(), mode) as client:
        await client.call_tool("run_greet", {"name": "Ada"}, progress_callback=on_progress)
    assert seen == [
        (1, "greet: step start (start)"),
        (2, "greet: step compose (call)"),
        (3, "greet: step done (end)"),
    ]


async def test_progress_includes_the_steps_of_sub_workflows(make_server: MakeServer) -> None:
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    server = make_server([NESTED / "parent.yml"])
    async with connect(server) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool(
            "run_parent", {"city": "Oslo"}, progress_callback=on_progress
        )
    assert "run_child" not in names  # beside the served file: callable, not served
    assert result.structured_content["output"] == {
        "booking": {"hotel": "Hotel in Oslo", "confirmed": True}
    }
    assert seen == [
        "parent: step book (workflow)",
        "child: step pick (assign)",
        "child: step confirm (assign)",
        "child: step done (end)",
        "parent: step done (end)",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "missing required argument 'name'"),
        ({"name": 42}, "argument 'name' must be string, got 42"),
        ({"name": "Ada", "excited": "yes"}, "argument 'excited' must be boolean, got \"yes\""),
        ({"nam": "Ada"}, "unknown argument 'nam' (did you mean 'name'?); accepted: name,"),
    ],
)
async def test_invalid_arguments_are_a_tool_error_naming_the_field(
    make_server: MakeServer, arguments: dict[str, Any], message: str
) -> None:
    server = make_server()
    async with connect(server) as client:
        result = await client.call_tool("run_greet", arguments)
        listed = await client.call_tool("list_executions", {})
    assert result.is_error
    assert text(result).startswith("invalid arguments for run_greet: ")
    assert message in text(result)
    assert listed.structured_content == {"executions": []}  # nothing was started


async def test_an_unknown_tool_is_a_protocol_error(make_server: MakeServer, mode: str) -> None:
    async with connect(make_server(), mode) as client:
        with pytest.raises(MCPError, match="Unknown tool: run_nothing") as caught:
            await client.call_tool("run_nothing", {})
    assert caught.value.code == types.INVALID_PARAMS


async def test_a_failing_workflow_is_a_tool_error_with_its_step_and_message(
    make_server: MakeServer, mode: str
) -> None:
    async with connect(make_server(), mode) as client:
        result = await client.call_tool("run_failing", {})
    assert result.is_error
    assert result.structured_content["status"] == "failed"
    assert result.structured_content["error"]["message"] == "card declined by the bank"
    assert "failed at step 'boom': card declined by the bank" in text(result)


async def test_a_halted_approval_returns_its_prompt_and_resumes_to_completion(
    make_server: MakeServer, mode: str
) -> None:
    async with connect(make_server(), mode) as client:
        first = await client.call_tool("run_expense", {"amount": 500, "requester": "Bob"})
        halt = first.structured_content["halt"]
        execution_id = first.structured_content["execution_id"]
        assert first.structured_content["status"] == "halted"
        assert halt["prompt"] == "Approve 500 EUR for Bob?"
        assert halt["data"]["type"] == "approval"
        assert halt["data"]["context"] == {"amount": 500, "requester": "Bob"}
        assert f'resume_execution with execution_id "{execution_id}"' in text(first)
        status = await client.call_tool("get_execution", {"execution_id": execution_id})
        assert status.structured_content["status"] == "halted"
        done = await client.call_tool(
            "resume_execution", {"execution_id": execution_id, "approved": False, "by": "carol"}
        )
        again = await client.call_tool(
            "resume_execution", {"execution_id": execution_id, "approved": True}
        )
    assert done.structured_content["status"] == "completed"
    assert done.structured_content["output"] == {"decision": "rejected"}
    assert again.is_error
    assert "is completed; only halted executions can be resumed" in text(again)


async def test_a_halt_step_is_answered_with_a_response(make_server: MakeServer, mode: str) -> None:
    async with connect(make_server(), mode) as client:
        first = await client.call_tool("run_ask", {})
        execution_id = first.structured_content["execution_id"]
        assert first.structured_content["halt"]["prompt"] == "What is your name?"
        assert "and a response" in text(first)
        done = await client.call_tool(
            "resume_execution", {"execution_id": execution_id, "response": {"name": "Ada"}}
        )
    assert done.structured_content["output"] == {"greeting": "Hello, Ada"}


async def test_resume_says_what_it_needs(make_server: MakeServer) -> None:
    async with connect(make_server()) as client:
        first = await client.call_tool("run_expense", {"amount": 500, "requester": "Bob"})
        execution_id = first.structured_content["execution_id"]
        nothing = await client.call_tool("resume_execution", {"execution_id": execution_id})
        no_decision = await client.call_tool(
            "resume_execution", {"execution_id": execution_id, "response": "ok"}
        )
        unknown = await client.call_tool(
            "resume_execution", {"execution_id": "nope", "approved": True}
        )
    assert "say how to resume" in text(nothing)
    assert "waits for an approval: pass approved true or false" in text(no_decision)
    assert unknown.is_error
    assert "no execution 'nope'" in text(unknown)


async def test_a_slow_workflow_answers_running_and_continues_in_the_server(
    make_server: MakeServer, mode: str
) -> None:
    server = make_server(wait=0.2)
    async with connect(server, mode) as client:
        first = await client.call_tool("run_slow", {"seconds": 1.2})
        execution_id = first.structured_content["execution_id"]
        assert first.structured_content["status"] == "running"
        assert not first.is_error
        assert f'get_execution with execution_id "{execution_id}"' in text(first)
        waited = await client.call_tool(
            "get_execution", {"execution_id": execution_id, "wait_seconds": 0.1}
        )
        assert waited.structured_content["status"] == "running"
        for _ in range(50):
            polled = await client.call_tool(
                "get_execution", {"execution_id": execution_id, "wait_seconds": 60}
            )
            if polled.structured_content["status"] != "running":
                break
    assert polled.structured_content["status"] == "completed"
    assert polled.structured_content["output"] == {"slept": 1.2}


async def test_cancel_execution_cancels_a_halted_execution(
    make_server: MakeServer, mode: str
) -> None:
    async with connect(make_server(), mode) as client:
        first = await client.call_tool("run_expense", {"amount": 500, "requester": "Bob"})
        execution_id = first.structured_content["execution_id"]
        cancelled = await client.call_tool("cancel_execution", {"execution_id": execution_id})
        twice = await client.call_tool("cancel_execution", {"execution_id": execution_id})
    assert cancelled.structured_content["status"] == "cancelled"
    assert "was cancelled" in text(cancelled)
    assert twice.is_error
    assert "already cancelled" in text(twice)


async def test_cancel_execution_stops_a_running_execution_at_its_next_step(
    make_server: MakeServer,
) -> None:
    async with connect(make_server(wait=0.05)) as client:
        first = await client.call_tool("run_slow", {"seconds": 1.0})
        execution_id = first.structured_content["execution_id"]
        cancelled = await client.call_tool("cancel_execution", {"execution_id": execution_id})
    assert cancelled.structured_content["status"] == "cancelled"


async def test_list_executions_shows_recent_runs_of_served_workflows(
    make_server: MakeServer,
) -> None:
    async with connect(make_server()) as client:
        greet = await client.call_tool("run_greet", {"name": "Ada"})
        expense = await client.call_tool("run_expense", {"amount": 5, "requester": "Bob"})
        everything = await client.call_tool("list_executions", {})
        halted = await client.call_tool("list_executions", {"status": "halted"})
        greets = await client.call_tool("list_executions", {"workflow_id": "greet", "limit": 1})
    rows = everything.structured_content["executions"]
    assert [r["execution_id"] for r in rows] == [
        expense.structured_content["execution_id"],
        greet.structured_content["execution_id"],
    ]
    assert rows[0]["workflow_id"] == "expense"
    assert rows[0]["status"] == "completed"
    assert halted.structured_content["executions"] == []
    assert [r["workflow_id"] for r in greets.structured_content["executions"]] == ["greet"]


async def test_executions_of_workflows_it_does_not_serve_are_invisible(
    make_server: MakeServer,
) -> None:
    store = dwf.open_store("memory://")
    other = dwf.Engine(store, workflows=load_workflows([NESTED]).catalog)
    hidden = await other.run(other.workflows["child"], {"city": "Rome"})
    server = WorkflowServer(load_workflows([WORKFLOWS]), engine=dwf.Engine(store))
    async with connect(server) as client:
        got = await client.call_tool("get_execution", {"execution_id": hidden.execution_id})
        listed = await client.call_tool("list_executions", {})
    assert got.is_error
    assert "belongs to workflow 'child', which this server does not serve" in text(got)
    assert listed.structured_content == {"executions": []}


async def test_the_engine_given_stays_open_after_the_server_stops() -> None:
    engine = dwf.Engine("memory://", services=load_services([SERVICES], env=False))
    server = WorkflowServer(load_workflows([WORKFLOWS]), engine=engine)
    async with connect(server) as client:
        result = await client.call_tool("run_greet", {"name": "Ada"})
    record = await engine.get(result.structured_content["execution_id"])
    assert record.status == dwf.Status.COMPLETED
    with pytest.raises(RuntimeError, match="not running"):
        server.executions  # noqa: B018
    await engine.close()


def test_a_server_needs_workflows_a_sane_wait_and_one_source_of_engine() -> None:
    loaded = load_workflows([WORKFLOWS])
    with pytest.raises(dwf.ConfigurationError, match="no workflows to serve"):
        WorkflowServer([])
    with pytest.raises(dwf.ConfigurationError, match="wait must be >= 0"):
        WorkflowServer(loaded, wait=-1)
    with pytest.raises(dwf.ConfigurationError, match="either an engine or store"):
        WorkflowServer(loaded, engine=dwf.Engine("memory://"), store="memory://")
