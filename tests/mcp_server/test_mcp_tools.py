"""Tool definitions: names, schemas from workflow inputs, argument checks."""

from __future__ import annotations

from typing import Any

import pytest

import dwf
from mcp_server.tools import ANY_JSON, ArgumentError, build_tools, tool_name, workflow_tool


def workflow(inputs: dict[str, Any] | None = None, **header: Any) -> dwf.WorkflowDefinition:
    doc: dict[str, Any] = {"id": "w", "name": "W", "steps": [{"id": "e", "type": "end"}], **header}
    if inputs is not None:
        doc["inputs"] = inputs
    return dwf.load_workflow(doc)


def test_tool_names_keep_only_the_characters_mcp_allows() -> None:
    assert tool_name("run_", "order fulfilment/v2") == "run_order_fulfilment_v2"
    assert tool_name("run_", "a.b-c_d") == "run_a.b-c_d"
    assert len(tool_name("run_", "x" * 300)) == 128


def test_the_input_schema_has_types_defaults_descriptions_and_required_inputs() -> None:
    spec = workflow_tool(
        workflow(
            {
                "amount": {"type": "number", "description": "How much"},
                "currency": {"type": "string", "default": "EUR"},
                "note": {"type": "string", "required": False},
                "extra": {},
            }
        ),
        wait=25,
    )
    assert spec.input_schema == {
        "type": "object",
        "properties": {
            "amount": {"type": "number", "description": "How much"},
            "currency": {"type": "string", "default": "EUR"},
            "note": {"type": "string"},
            "extra": ANY_JSON,
        },
        "required": ["amount", "extra"],
        "additionalProperties": False,
    }


def test_the_description_is_the_workflows_then_how_to_follow_up() -> None:
    described = workflow_tool(workflow(description="Ship an order."), wait=12)
    plain = workflow_tool(workflow(), wait=25)
    assert described.description.startswith("Ship an order.\n\n")
    assert "finishes within 12 s" in described.description
    assert plain.description.startswith("Run the W workflow.")


def test_a_workflow_without_inputs_accepts_no_arguments_and_any_object() -> None:
    spec = workflow_tool(workflow(), wait=25)
    assert spec.input_schema == {"type": "object", "properties": {}}
    assert spec.validate(None) == {}


def test_argument_errors_list_every_problem() -> None:
    spec = workflow_tool(workflow({"a": {"type": "integer"}, "b": {"type": "string"}}), wait=1)
    with pytest.raises(ArgumentError) as caught:
        spec.validate({"a": "1", "c": True})
    message = str(caught.value)
    assert "missing required argument 'b'" in message
    assert "argument 'a' must be integer, got \"1\"" in message
    assert "unknown argument 'c'" in message


def test_two_workflows_may_not_map_to_one_tool_name() -> None:
    first = dwf.load_workflow({"id": "a b", "name": "x", "steps": [{"id": "e", "type": "end"}]})
    second = dwf.load_workflow({"id": "a_b", "name": "y", "steps": [{"id": "e", "type": "end"}]})
    with pytest.raises(dwf.ConfigurationError, match="two tools would be named 'run_a_b'"):
        build_tools([first, second], wait=1)


def test_the_prefix_of_workflow_tools_can_change() -> None:
    tools = build_tools([workflow()], wait=1, prefix="")
    assert "w" in tools
    assert set(tools) - {"w"} == {
        "get_execution", "resume_execution", "cancel_execution", "list_executions",
    }  # fmt: skip
