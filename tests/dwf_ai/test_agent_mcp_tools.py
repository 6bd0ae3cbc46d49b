"""Agents given the tools of MCP servers (``mcp_servers: [...]`` on the agent), against the tiny
Python MCP server of ``mcp_fixtures`` in a real process over stdio."""

# Fixtures imported from mcp_fixtures are test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import pytest
import pytest_asyncio
import yaml
from mcp_fixtures import (  # noqa: F401 (fixtures are found by name)
    counter_file,
    errlog,
    test_server,
    test_server_script,
)

import dwf
from dwf_ai import AIExtension, ToolRegistry, tool
from dwf_ai.mcp import MCPClientPool, ToolResult
from dwf_ai.models.base import ToolSpec
from dwf_ai.testing import ScriptedModel

pytestmark = pytest.mark.slow


class RecordingPool(MCPClientPool):
    """The real pool, remembering what agents asked of it."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.listings: list[str] = []
        self.calls: list[tuple[str, str, dict[str, Any], str | None]] = []

    async def list_tools(self, server_name: str, **options: Any) -> list[ToolSpec]:
        self.listings.append(server_name)
        return await super().list_tools(server_name, **options)

    async def call_tool(
        self,
        server_name: str,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ToolResult:
        key = options.get("idempotency_key")
        self.calls.append((server_name, tool, dict(arguments or {}), key))
        return await super().call_tool(server_name, tool, arguments, **options)


class Desk:
    def __init__(self, errlog: TextIO) -> None:
        self.pool = RecordingPool(errlog=errlog)
        self.engines: list[dwf.Engine] = []

    def engine(
        self, turns: list[Any], tools: ToolRegistry | None = None
    ) -> tuple[dwf.Engine, dwf.Registry, ScriptedModel]:
        model = ScriptedModel(turns, name="m")
        registry = dwf.default_registry()
        registry.install(AIExtension(models={"m": model}, tools=tools, mcp_pool=self.pool))
        engine = dwf.Engine("memory://", registry=registry)
        self.engines.append(engine)
        return engine, registry, model

    async def close(self) -> None:
        for engine in self.engines:
            await engine.close()  # closes the extension, and so the pool


@pytest_asyncio.fixture
async def desk(errlog: TextIO) -> AsyncIterator[Desk]:
    d = Desk(errlog)
    yield d
    await d.close()


def workflow(
    registry: dwf.Registry, server: dict[str, Any], agent: dict[str, Any] | None = None, **step: Any
) -> dwf.WorkflowDefinition:
    document = {
        "id": "w",
        "name": "W",
        "mcp_servers": {"tools": server},
        "agents": [{"id": "helper", "model": "m", "mcp_servers": ["tools"], **(agent or {})}],
        "steps": [
            {
                "id": "ask",
                "type": "agent",
                "agent_id": "helper",
                "prompt": "go",
                "output": "answer",
                "next": "done",
                **step,
            },
            {"id": "done", "type": "end", "result": {"answer": "$answer"}},
        ],
    }
    return dwf.load_workflow(yaml.safe_dump(document, sort_keys=False), registry=registry)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def counted(counter_file: Path) -> list[str]:
    """What the server's ``count`` tool recorded, one label per call."""
    return counter_file.read_text().splitlines() if counter_file.exists() else []


def tool_results(model: ScriptedModel, request: int) -> list[str]:
    return [m["content"] for m in model.requests[request].messages if m["role"] == "tool"]


async def test_an_agent_is_offered_the_servers_tools_and_calls_them_with_per_call_keys(
    desk: Desk, test_server: dict[str, Any], counter_file: Path
) -> None:
    engine, registry, model = desk.engine(
        [
            {"tool_calls": [{"name": "count", "arguments": {"label": "a"}, "id": "c1"}]},
            {"tool_calls": [{"name": "count", "arguments": {"label": "b"}, "id": "c2"}]},
            "Counted twice.",
        ]
    )
    result = await engine.run(workflow(registry, test_server), {})

    assert result.output == {"answer": "Counted twice."}
    assert counted(counter_file) == ["a", "b"]
    offered = {t.name: t for t in model.requests[0].tools}
    assert set(offered) == {"pid", "count", "crash", "fail", "meta", "slow", "refuse"}
    assert offered["count"].parameters["required"] == ["label"]
    assert offered["count"].description == "Record one call in $DWF_TEST_COUNTER."
    assert tool_results(model, 2) == ["a", "b"]
    keys = [key for *_, key in desk.pool.calls]
    assert keys == [f"{result.execution_id}:ask:c1", f"{result.execution_id}:ask:c2"]
    assert desk.pool.listings == ["tools"]  # once per step, not once per turn


async def test_calls_the_server_refuses_go_back_to_the_model_as_tool_errors(
    desk: Desk, test_server: dict[str, Any], counter_file: Path
) -> None:
    engine, registry, model = desk.engine(
        [
            {
                "tool_calls": [
                    {"name": "count", "arguments": {}},  # missing the required label
                    {"name": "fail", "arguments": {"reason": "the disk is full"}},
                    {"name": "cuont", "arguments": {"label": "x"}},
                ]
            },
            "I could not count.",
        ]
    )
    result = await engine.run(workflow(registry, test_server), {})

    assert result.output == {"answer": "I could not count."}
    invalid, failed, unknown = tool_results(model, 1)
    assert invalid.startswith("Error: invalid arguments for tool 'count': (arguments): 'label'")
    assert failed == "Error: tool 'fail' of MCP server 'tools' failed: the disk is full"
    assert unknown.startswith("Error: there is no tool 'cuont'")
    assert counted(counter_file) == []
    entry = next(e for e in await engine.entries(result.execution_id) if e.step_id == "ask")
    assert entry.output["tool_errors"] == 3 and entry.output["invalid_arguments"] == 1


async def test_a_server_that_does_not_answer_in_time_fails_the_step(
    desk: Desk, test_server: dict[str, Any]
) -> None:
    engine, registry, _ = desk.engine([call("slow", seconds=5)])
    server = {**test_server, "timeout": 0.3}
    result = await engine.run(workflow(registry, server), {})

    assert result.failed and result.error is not None
    assert result.error["type"] == "MCPToolUnavailable"
    assert "did not answer tools/call 'slow' within 0.3s" in result.error["message"]
    assert result.error["server"] == "tools" and result.error["tool"] == "slow"


async def test_a_server_that_cannot_start_fails_the_step_when_listing(desk: Desk) -> None:
    engine, registry, _ = desk.engine(["never asked"])
    server = {"command": "dwf-no-such-mcp-server-binary"}
    result = await engine.run(workflow(registry, server, retries=0), {})
    assert result.failed and result.error is not None
    assert result.error["type"] == "MCPToolUnavailable"
    assert result.error["server"] == "tools"
    assert "could not list the tools of its MCP servers" in result.error["message"]
    assert "dwf-no-such-mcp-server-binary" in result.error["message"]


async def test_the_listing_is_journaled_so_a_resumed_step_does_not_list_again(
    desk: Desk, test_server: dict[str, Any], counter_file: Path
) -> None:
    @tool(needs_approval=True)
    def refund(order_id: str) -> str:
        """Refund an order."""
        return f"refunded {order_id}"

    engine, registry, model = desk.engine(
        [
            {
                "tool_calls": [
                    {"name": "count", "arguments": {"label": "before"}},
                    {"name": "refund", "arguments": {"order_id": "A-1"}},
                ]
            },
            call("count", label="after"),
            "Refunded.",
        ],
        tools=ToolRegistry([refund]),
    )
    wf = workflow(registry, test_server, agent={"tools": ["refund"]})
    halted = await engine.run(wf, {})
    assert halted.status == "halted"
    result = await engine.resume(halted.execution_id, approved=True)

    assert result.output == {"answer": "Refunded."}
    assert counted(counter_file) == ["before", "after"]
    assert desk.pool.listings == ["tools"]
    names = [[t.name for t in r.tools] for r in model.requests]
    assert names[0] == names[1] == names[2]
    assert names[0][0] == "refund"  # the agent's own tools first, then the servers'


async def test_an_mcp_tool_named_like_an_agent_tool_is_offered_under_its_server_name(
    desk: Desk, test_server: dict[str, Any], counter_file: Path
) -> None:
    @tool
    def count(label: str) -> str:
        """A local tool that happens to share the name."""
        return f"local {label}"

    engine, registry, model = desk.engine(
        [call("count", label="l"), call("tools__count", label="r"), "ok"],
        tools=ToolRegistry([count]),
    )
    result = await engine.run(workflow(registry, test_server, agent={"tools": ["count"]}), {})

    assert result.output == {"answer": "ok"}
    assert "tools__count" in [t.name for t in model.requests[0].tools]
    assert tool_results(model, 2) == ["local l", "r"]
    assert counted(counter_file) == ["r"]


def test_an_agent_naming_an_undefined_server_is_a_load_error() -> None:
    registry = dwf.default_registry()
    registry.install(AIExtension(models={"m": ScriptedModel([])}))
    with pytest.raises(dwf.WorkflowLoadError) as caught:
        dwf.load_workflow(
            """
id: w
name: W
mcp_servers:
  github: {url: "https://example.invalid/mcp"}
agents:
  - {id: helper, model: m, mcp_servers: [gihub]}
steps:
  - {id: ask, type: agent, agent_id: helper, prompt: go}
""",
            registry=registry,
        )
    message = str(caught.value)
    assert "agent 'helper' names unknown MCP server 'gihub' (line 7)" in message
    assert "did you mean 'github'?" in message
