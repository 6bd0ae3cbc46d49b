"""Python tools: ``@tool`` derives the JSON Schema from the signature and the docstring."""

from __future__ import annotations

import threading
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

import dwf
from dwf_ai import AIExtension, Tool, ToolRegistry, tool
from dwf_ai.testing import ScriptedModel


class Address(BaseModel):
    city: str
    zip: str | None = None


@tool
async def lookup_order(order_id: str, email: str | None = None, limit: int = 5) -> dict[str, Any]:
    """Look up an order by its id.

    More details that the model does not need.

    Args:
        order_id: The order id, e.g. ORD-12345.
        email: The customer's email,
            to double check.
        limit (int): How many orders at most.

    Returns:
        The order.
    """
    return {"order_id": order_id, "email": email, "limit": limit}


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    assert isinstance(lookup_order, Tool)
    assert lookup_order.name == "lookup_order"
    assert lookup_order.description == "Look up an order by its id."
    assert lookup_order.parameters == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "The order id, e.g. ORD-12345."},
            "email": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "description": "The customer's email, to double check.",
            },
            "limit": {"type": "integer", "default": 5, "description": "How many orders at most."},
        },
        "required": ["order_id"],
        "additionalProperties": False,
    }
    assert lookup_order.needs_approval is False


def test_options_name_description_and_approval_and_nested_models() -> None:
    @tool(name="ship", description="Ship a parcel", needs_approval=True)
    def ship_parcel(to: Address, speed: Literal["slow", "fast"] = "slow") -> str:
        return f"{to.city}:{speed}"

    assert (ship_parcel.name, ship_parcel.description, ship_parcel.needs_approval) == (
        "ship",
        "Ship a parcel",
        True,
    )
    assert ship_parcel.parameters["properties"]["speed"] == {
        "enum": ["slow", "fast"],
        "type": "string",
        "default": "slow",
    }
    assert ship_parcel.parameters["$defs"]["Address"]["required"] == ["city"]
    kwargs = ship_parcel.bind({"to": {"city": "Oslo"}})
    assert kwargs == {"to": Address(city="Oslo"), "speed": "slow"}
    assert ship_parcel(**kwargs) == "Oslo:slow"  # the tool object still calls the function


def test_bind_refuses_wrong_types_and_unknown_arguments() -> None:
    with pytest.raises(ValidationError):
        lookup_order.bind({"order_id": "A", "limit": "many"})
    with pytest.raises(ValidationError):
        lookup_order.bind({"order_id": "A", "colour": "red"})


async def test_sync_tools_run_in_a_worker_thread_and_get_the_idempotency_key() -> None:
    seen: dict[str, Any] = {}

    @tool
    def charge(amount: float, idempotency_key: str) -> str:
        """Charge the customer."""
        seen["thread"] = threading.current_thread() is threading.main_thread()
        seen["key"] = idempotency_key
        return f"charged {amount}"

    assert "idempotency_key" not in charge.parameters["properties"]
    assert await charge.call(charge.bind({"amount": 3}), idempotency_key="k1") == "charged 3.0"
    assert seen == {"thread": False, "key": "k1"}


def test_functions_whose_parameters_cannot_be_named_are_refused() -> None:
    def spread(*args: int) -> int:
        return sum(args)

    with pytest.raises(TypeError, match="parameter 'args' must be a named parameter"):
        tool(spread)
    with pytest.raises(TypeError, match="reserved for handoffs"):
        tool(name="transfer_to_billing")(lambda: None)
    with pytest.raises(TypeError, match="must be 1-64 letters"):
        tool(name="look up")(lambda: None)


def test_the_registry_registers_functions_and_refuses_a_second_tool_with_a_name() -> None:
    tools = ToolRegistry([lookup_order])

    @tools.register
    def ping() -> str:
        """Ping."""
        return "pong"

    assert isinstance(ping, Tool)
    assert tools.names() == ["lookup_order", "ping"]
    assert "ping" in tools and tools["ping"] is ping
    with pytest.raises(dwf.RegistryError, match="already registered"):
        tools.register(tool(name="ping")(lambda: "other"))
    with pytest.raises(dwf.RegistryError, match="did you mean 'ping'"):
        tools["pong"]


async def test_an_agent_calls_a_python_tool_with_a_key_per_tool_call() -> None:
    keys: list[str] = []

    @tool
    async def refund(order_id: str, idempotency_key: str) -> dict[str, str]:
        """Refund an order."""
        keys.append(idempotency_key)
        return {"refunded": order_id}

    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "refund", "arguments": {"order_id": "A-1"}, "id": "c1"}]},
            "Refunded.",
        ]
    )
    registry = dwf.default_registry()
    registry.install(AIExtension(models={"m": model}, tools=ToolRegistry([refund])))
    workflow = dwf.load_workflow(
        """
id: w
name: W
agents:
  - {id: a, model: m, tools: [refund]}
steps:
  - {id: ask, type: agent, agent_id: a, prompt: Refund A-1, output: answer}
""",
        registry=registry,
    )
    engine = dwf.Engine("memory://", registry=registry)
    result = await engine.run(workflow)
    assert result.status == "completed"
    assert keys == [f"{result.execution_id}:ask:c1"]
    offered = model.requests[0].tools[0]
    assert (offered.name, offered.description) == ("refund", "Refund an order.")
    assert model.requests[1].messages[-1]["content"] == '{"refunded": "A-1"}'
