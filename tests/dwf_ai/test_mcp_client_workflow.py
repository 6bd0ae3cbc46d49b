"""The ``mcp`` step inside workflows run by the engine, against real stdio server processes."""

# Fixtures imported from mcp_fixtures are test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import pytest
import pytest_asyncio
import yaml
from mcp_fixtures import (  # noqa: F401 (fixtures are found by name)
    counter_file,
    errlog,
    everything_js,
    everything_server,
    process_alive,
    test_server,
    test_server_script,
    wait_until,
)

import dwf
from dwf.extensions import TopLevelKey
from dwf_ai.mcp import (
    MCPClientPool,
    MCPServersSection,
    MCPStep,
    check_mcp_servers,
)

pytestmark = pytest.mark.slow


def make_registry(pool: MCPClientPool) -> dwf.Registry:
    registry = dwf.default_registry()
    registry.register_step(MCPStep(pool=pool))
    registry.register_top_level_key(
        TopLevelKey("mcp_servers", MCPServersSection, check=check_mcp_servers)
    )
    return registry


class Harness:
    """An engine (memory store) whose registry has the ``mcp`` step on one pool."""

    def __init__(self, errlog: TextIO) -> None:
        self.pool = MCPClientPool(errlog=errlog)
        self.registry = make_registry(self.pool)
        self.engine = dwf.Engine("memory://", registry=self.registry)

    def load(self, servers: dict[str, Any], steps: list[dict[str, Any]], **extra: Any) -> Any:
        document = {
            "id": "wf",
            "name": "MCP workflow",
            "mcp_servers": servers,
            "steps": [{"id": "start", "type": "start", "next": steps[0]["id"]}, *steps],
            **extra,
        }
        return dwf.load_workflow(yaml.safe_dump(document, sort_keys=False), registry=self.registry)

    async def close(self) -> None:
        await self.engine.close()
        await self.pool.aclose()


@pytest_asyncio.fixture
async def harness(errlog: TextIO) -> AsyncIterator[Harness]:
    h = Harness(errlog)
    yield h
    await h.close()


def calls(counter_file: Path) -> list[str]:
    return counter_file.read_text().splitlines() if counter_file.exists() else []


async def test_the_step_stores_structured_content_in_its_output(
    harness: Harness, everything_server: dict[str, Any]
) -> None:
    workflow = harness.load(
        {"everything": everything_server},
        [
            {
                "id": "weather",
                "type": "mcp",
                "server": "everything",
                "tool": "get-structured-content",
                "arguments": {"location": "$input.city"},
                "output": "forecast",
                "next": "echo",
            },
            {
                "id": "echo",
                "type": "mcp",
                "server": "everything",
                "tool": "echo",
                "arguments": {"message": "$forecast.conditions"},
                "output": "said",
                "next": "done",
            },
            {"id": "done", "type": "end", "result": {"f": "$forecast", "said": "$said"}},
        ],
        inputs={"city": {"type": "string"}},
    )
    result = await harness.engine.run(workflow, {"city": "Los Angeles"})
    assert result.status == "completed", result.error
    assert result.output == {
        "f": {"temperature": 73, "conditions": "Sunny / Clear", "humidity": 48},
        "said": "Echo: Sunny / Clear",
    }


async def test_a_tool_error_fails_the_step_with_the_servers_message_and_on_error_applies(
    harness: Harness, test_server: dict[str, Any]
) -> None:
    workflow = harness.load(
        {"py": test_server},
        [
            {
                "id": "charge",
                "type": "mcp",
                "server": "py",
                "tool": "fail",
                "arguments": {"reason": "card declined"},
                "on_error": "handle",
                "next": "done",
            },
            {"id": "handle", "type": "assign", "set": {"why": "$_last_error"}, "next": "done"},
            {"id": "done", "type": "end", "result": "$why"},
        ],
    )
    result = await harness.engine.run(workflow)
    assert result.status == "completed"
    assert result.output == {
        "step": "charge",
        "type": "MCPToolError",
        "message": "tool 'fail' on MCP server 'py' failed: card declined",
    }


async def test_without_on_error_the_workflow_fails_with_the_servers_message(
    harness: Harness, test_server: dict[str, Any]
) -> None:
    workflow = harness.load(
        {"py": test_server},
        [
            {"id": "charge", "type": "mcp", "server": "py", "tool": "fail", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    )
    result = await harness.engine.run(workflow)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "MCPToolError"
    assert result.error["message"] == "tool 'fail' on MCP server 'py' failed: failed"
    assert result.error["server"] == "py"


async def test_a_completed_call_is_not_repeated_when_the_execution_resumes(
    harness: Harness, test_server: dict[str, Any], counter_file: Path
) -> None:
    workflow = harness.load(
        {"py": test_server},
        [
            {
                "id": "first",
                "type": "mcp",
                "server": "py",
                "tool": "count",
                "arguments": {"label": "first"},
                "output": "first",
                "next": "approve",
            },
            {"id": "approve", "type": "approval", "prompt": "Go on?", "next": "second"},
            {
                "id": "second",
                "type": "mcp",
                "server": "py",
                "tool": "count",
                "arguments": {"label": "second"},
                "output": "second",
                "next": "done",
            },
            {"id": "done", "type": "end", "result": ["$first", "$second"]},
        ],
    )
    halted = await harness.engine.run(workflow)
    assert halted.status == "halted"
    assert calls(counter_file) == ["first"]
    result = await harness.engine.resume(halted.execution_id, approved=True)
    assert result.status == "completed", result.error
    assert result.output == ["first", "second"]
    assert calls(counter_file) == ["first", "second"]


async def test_invalid_arguments_are_not_retried(
    harness: Harness, test_server: dict[str, Any], counter_file: Path
) -> None:
    workflow = harness.load(
        {"py": test_server},
        [
            {
                "id": "count",
                "type": "mcp",
                "server": "py",
                "tool": "count",
                "arguments": {"label": 7},
                "retries": 3,
                "retry_delay": 0,
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    )
    result = await harness.engine.run(workflow)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "MCPInvalidArguments"
    assert "label: 7 is not of type 'string'" in result.error["message"]
    entries = await harness.engine.entries(result.execution_id)
    assert [e.action for e in entries if e.step_id == "count"] == ["failed"]
    assert calls(counter_file) == []


async def test_a_lost_connection_is_retried_by_the_steps_retries(
    harness: Harness, test_server: dict[str, Any]
) -> None:
    workflow = harness.load(
        {"py": test_server},
        [
            {
                "id": "boom",
                "type": "mcp",
                "server": "py",
                "tool": "crash",
                "retries": 1,
                "retry_delay": 0,
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    )
    result = await harness.engine.run(workflow)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "MCPConnectionError"
    entries = await harness.engine.entries(result.execution_id)
    assert [e.action for e in entries if e.step_id == "boom"] == ["retried", "failed"]


async def test_the_step_timeout_bounds_the_call(
    harness: Harness, test_server: dict[str, Any]
) -> None:
    workflow = harness.load(
        {"py": test_server},
        [
            {
                "id": "slow",
                "type": "mcp",
                "server": "py",
                "tool": "slow",
                "arguments": {"seconds": 30},
                "timeout": 0.3,
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    )
    result = await asyncio.wait_for(harness.engine.run(workflow), 10)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] in ("MCPTimeoutError", "StepTimeout")


async def test_arguments_may_be_one_reference_to_a_mapping(
    harness: Harness, test_server: dict[str, Any]
) -> None:
    workflow = harness.load(
        {"py": test_server},
        [
            {
                "id": "count",
                "type": "mcp",
                "server": "py",
                "tool": "count",
                "arguments": "$input.args",
                "output": "out",
                "next": "bad",
            },
            {
                "id": "bad",
                "type": "mcp",
                "server": "py",
                "tool": "count",
                "arguments": "$input.label",
                "next": "done",
            },
            {"id": "done", "type": "end", "result": "$out"},
        ],
    )
    result = await harness.engine.run(workflow, {"args": {"label": "x"}, "label": "y"})
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["step"] == "bad"
    assert "'arguments' must be a mapping" in result.error["message"]


async def test_the_idempotency_key_of_the_step_is_sent(
    harness: Harness, test_server: dict[str, Any]
) -> None:
    workflow = harness.load(
        {"py": test_server},
        [
            {"id": "m", "type": "mcp", "server": "py", "tool": "meta", "output": "m"},
        ],
    )
    result = await harness.engine.run(workflow)
    assert result.status == "completed", result.error
    entries = await harness.engine.entries(result.execution_id)
    output = next(e.output for e in entries if e.step_id == "m")
    assert output["meta"]["dwf/idempotency-key"] == f"{result.execution_id}:m"


def test_run_sync_in_fresh_event_loops_reconnects_and_leaves_no_process(
    errlog: TextIO, test_server: dict[str, Any]
) -> None:
    harness = Harness(errlog)
    workflow = harness.load(
        {"py": test_server},
        [
            {"id": "p", "type": "mcp", "server": "py", "tool": "pid", "output": "p", "next": "end"},
            {"id": "end", "type": "end", "result": "$p.pid"},
        ],
    )
    pids = []
    for _ in range(2):
        result = harness.engine.run_sync(workflow)
        assert result.status == "completed", result.error
        pids.append(result.output)
    # Each run_sync ran in its own event loop, whose shutdown closed that loop's connection.
    assert len(set(pids)) == 2
    assert not any(process_alive(pid) for pid in pids)
    asyncio.run(harness.close())
