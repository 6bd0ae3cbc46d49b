"""Tools that workflows declare in a top-level ``tools:`` section are exposed too.

The section belongs to the AI extension; the server reads only ``workflow.extensions["tools"]``.
These tests register a stand-in ``tools`` key, as any extension would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp_support import SERVICES, connect

import dwf
from mcp_server import WorkflowServer, load_services, load_workflows
from mcp_server.declared import DeclaredTool, declared_tools

ORDERS = """\
id: orders
name: Order desk
tools:
  - id: lookup_order
    description: Look up an order
    parameters:
      - {name: order_id, type: string, description: The order id}
      - {name: verbose, type: boolean, required: false}
    service: Orders
    method: lookup
  - id: explode
    description: A tool whose service raises
    parameters: []
    service: Broken
    method: explode
steps:
  - id: done
    type: end
    result: {ok: true}
"""


class _StandInExtension:
    """Registers a ``tools`` key the way dwf_ai does (its model here: plain dicts)."""

    name = "stand_in_tools"

    def setup(self, registry: dwf.Registry) -> None:
        registry.register_top_level_key(dwf.TopLevelKey("tools", model=list[dict[str, Any]]))


def _registry() -> dwf.Registry:
    registry = dwf.default_registry()
    registry.install(_StandInExtension())
    return registry


@pytest.fixture
def orders(tmp_path: Path) -> Path:
    path = tmp_path / "orders.yml"
    path.write_text(ORDERS)
    return path


def _server(orders: Path, **options: Any) -> WorkflowServer:
    registry = _registry()
    return WorkflowServer(
        load_workflows([orders], registry=registry),
        store="memory://",
        services=load_services([SERVICES], env=False),
        registry=registry,
        **options,
    )


async def test_declared_tools_are_listed_with_their_parameters(orders: Path) -> None:
    async with connect(_server(orders)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert tools["lookup_order"].description == "Look up an order"
    assert tools["lookup_order"].input_schema == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "The order id"},
            "verbose": {"type": "boolean"},
        },
        "required": ["order_id"],
    }
    assert "run_orders" in tools


async def test_a_declared_tool_calls_the_registered_service(orders: Path, mode: str) -> None:
    async with connect(_server(orders), mode) as client:
        result = await client.call_tool("lookup_order", {"order_id": "A-1"})
        bad = await client.call_tool("lookup_order", {"id": "A-1"})
        boom = await client.call_tool("explode", {})
    assert not result.is_error
    assert result.structured_content == {"result": {"order_id": "A-1", "status": "shipped"}}
    assert isinstance(result.content[0], types.TextContent)
    assert '"status": "shipped"' in result.content[0].text
    assert bad.is_error
    assert isinstance(bad.content[0], types.TextContent)
    assert "missing required argument 'order_id'" in bad.content[0].text
    assert boom.is_error
    assert isinstance(boom.content[0], types.TextContent)
    assert boom.content[0].text == "Broken.explode raised RuntimeError: card declined by the bank"


async def test_no_tools_hides_declared_tools(orders: Path) -> None:
    async with connect(_server(orders, declared_tools=False)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert "lookup_order" not in names
    assert "run_orders" in names


def test_declared_tools_accept_the_shapes_an_extension_may_use() -> None:
    class ToolDef:  # an object with the original gem's attribute names
        id = "ping"
        description = "Ping"
        parameters: list[Any] = []
        service = "Net"
        method_name = "ping"

    workflow = dwf.parse_workflow({"id": "w", "name": "w", "steps": [{"id": "e", "type": "end"}]})
    for raw in (
        [ToolDef()],
        {"ping": {"description": "Ping", "service": "Net", "method": "ping"}},
        [{"id": "ping", "service": "Net", "method": "ping", "parameters": {"type": "object"}}],
    ):
        workflow.extensions["tools"] = raw
        (tool,) = declared_tools(workflow)
        assert (tool.id, tool.service, tool.method) == ("ping", "Net", "ping")
        assert tool.input_schema()["type"] == "object"


def test_a_declared_tool_with_a_json_schema_keeps_it() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"address": {"type": "object"}},
        "properties": {"address": {"$ref": "#/$defs/address"}},
        "additionalProperties": False,
    }
    tool = DeclaredTool.model_validate(
        {"id": "t", "service": "S", "method": "m", "parameters": schema}
    )
    assert tool.input_schema() == schema


def test_a_declared_tool_named_like_a_built_in_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clash.yml"
    path.write_text(ORDERS.replace("id: lookup_order", "id: get_execution"))
    with pytest.raises(dwf.ConfigurationError, match="two tools would be named 'get_execution'"):
        _server(path)


def test_a_malformed_tools_section_is_explained() -> None:
    workflow = dwf.parse_workflow({"id": "w", "name": "w", "steps": [{"id": "e", "type": "end"}]})
    workflow.extensions["tools"] = [{"id": "x"}]
    with pytest.raises(dwf.ConfigurationError, match="workflow 'w': a tool in its 'tools'"):
        declared_tools(workflow)


class _ExtensionToolDef:
    """Shaped like the AI extension's parsed definitions: attributes plus ``json_schema()``."""

    def __init__(self, id: str, *, needs_approval: bool = False) -> None:
        self.id = id
        self.description = f"The {id} tool"
        self.parameters: list[Any] = []
        self.service = "Orders"
        self.method = "lookup"
        self.needs_approval = needs_approval

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"order_id": {"type": "string", "enum": ["A-1", "B-2"]}},
            "required": ["order_id"],
            "additionalProperties": False,
        }


async def test_an_extensions_own_schema_is_used_and_approval_tools_are_kept_back() -> None:
    workflow = dwf.parse_workflow({"id": "w", "name": "w", "steps": [{"id": "e", "type": "end"}]})
    workflow.extensions["tools"] = [
        _ExtensionToolDef("lookup"),
        _ExtensionToolDef("refund", needs_approval=True),
    ]
    server = WorkflowServer(
        [workflow], store="memory://", services=load_services([SERVICES], env=False)
    )
    async with connect(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        found = await client.call_tool("lookup", {"order_id": "A-1"})
        refused = await client.call_tool("lookup", {"order_id": "Z-9"})
    assert "refund" not in tools  # a direct call would skip the approval it requires
    assert tools["lookup"].input_schema["properties"]["order_id"]["enum"] == ["A-1", "B-2"]
    assert found.structured_content == {"result": {"order_id": "A-1", "status": "shipped"}}
    assert refused.is_error
