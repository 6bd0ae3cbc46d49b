"""The ``agents`` and ``tools`` sections: parsing, and located errors for what they get wrong."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import dwf
import dwf_ai
from dwf_ai import AgentDef, AIExtension, ToolDef, ToolRegistry, tool
from dwf_ai.definitions import agents_of, tools_of

AGENTS = """
id: support
name: Support
agents:
  - id: triage
    name: Triage Agent
    model: gpt-4o-mini
    instructions: You triage.
    temperature: 0.2
    max_turns: 4
    tools: [classify_request]
    handoffs:
      - agent_id: billing
        description: Transfer to billing
  - id: billing
    model: gpt-4o
    tools: [lookup_order]
    handoffs: [triage]
tools:
  - id: classify_request
    description: Classify the request
    parameters:
      - {name: category, type: string, required: true, enum: [billing, technical, general]}
      - {name: urgency, type: string, description: "low, medium or high"}
      - {name: note, type: null, required: false}
    service: SupportServices
    method: classify_request
  - id: lookup_order
    description: Look up an order
    service: SupportServices
    method: lookup_order
    needs_approval: true
steps:
  - {id: triage, type: agent, agent_id: triage, prompt: "$input.message", output: result}
"""


def registry(tools: ToolRegistry | None = None) -> dwf.Registry:
    reg = dwf.default_registry()
    reg.install(AIExtension(tools=tools))
    return reg


def load(text: str, tools: ToolRegistry | None = None) -> dwf.WorkflowDefinition:
    return dwf.load_workflow(textwrap.dedent(text), registry=registry(tools), file="wf.yml")


def problems(text: str, tools: ToolRegistry | None = None) -> list[str]:
    with pytest.raises(dwf.WorkflowLoadError) as info:
        load(text, tools)
    return [str(d) for d in info.value.diagnostics if d.severity == "error"]


def test_the_public_api_of_dwf_ai_is_pinned() -> None:
    assert sorted(dwf_ai.__all__) == [
        "AIExtension",
        "AgentDef",
        "HandoffDef",
        "MaxTurnsExceeded",
        "Tool",
        "ToolDef",
        "ToolParam",
        "ToolRegistry",
        "tool",
    ]
    for name in dwf_ai.__all__:
        assert getattr(dwf_ai, name) is not None


def test_importing_dwf_ai_and_its_extension_imports_no_provider_sdk() -> None:
    code = (
        "import sys, dwf, dwf_ai\n"
        "registry = dwf.default_registry()\n"
        "registry.install(dwf_ai.AIExtension())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openai', 'anthropic')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.strip() == "[]"


def test_agents_and_tools_in_list_form_become_typed_definitions() -> None:
    workflow = load(AGENTS)
    agents = agents_of(workflow)
    assert list(agents) == ["triage", "billing"]
    triage = agents["triage"]
    assert isinstance(triage, AgentDef)
    assert (triage.name, triage.model, triage.temperature, triage.max_turns) == (
        "Triage Agent",
        "gpt-4o-mini",
        0.2,
        4,
    )
    assert [h.tool_name for h in triage.handoffs] == ["transfer_to_billing"]
    assert agents["billing"].handoffs[0].agent_id == "triage"  # a bare id is a handoff too

    tools = tools_of(workflow)
    assert isinstance(tools["classify_request"], ToolDef)
    assert tools["lookup_order"].needs_approval is True
    assert tools["classify_request"].json_schema() == {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": ["billing", "technical", "general"]},
            "urgency": {"type": "string", "description": "low, medium or high"},
            "note": {"type": "string"},  # `type: null` means absent: the default applies
        },
        "required": ["category"],  # optional unless `required: true`
        "additionalProperties": False,
    }


def test_a_duplicate_agent_id_is_an_error_at_the_second_one() -> None:
    found = problems(
        """
        id: w
        name: W
        agents:
          - {id: a, model: m}
          - {id: a, model: m}
        steps:
          - {id: s, type: agent, agent_id: a, prompt: hi}
        """
    )
    assert found == [
        "wf.yml:6:10: 'agents': '1.id': duplicate agent id 'a' (entry 0 of the list has it too) "
        "(got string 'a')"
    ]


def test_a_duplicate_tool_id_and_a_bad_parameter_type_are_located() -> None:
    duplicate = problems(
        """
        id: w
        name: W
        tools:
          - {id: t, description: T, service: S, method: m}
          - {id: t, description: T, service: S, method: m}
        steps:
          - {id: s, type: assign, set: {x: 1}}
        """
    )
    assert duplicate == [
        "wf.yml:6:10: 'tools': '1.id': duplicate tool id 't' (entry 0 of the list has it too) "
        "(got string 't')"
    ]
    bad_type = problems(
        """
        id: w
        name: W
        tools:
          - id: t
            description: T
            service: S
            method: m
            parameters: [{name: q, type: strin}]
        steps:
          - {id: s, type: assign, set: {x: 1}}
        """
    )
    assert len(bad_type) == 1
    assert bad_type[0].startswith("wf.yml:9:34: 'tools': '0.parameters.0.type': input should be")


def test_the_map_form_of_agents_is_refused_with_the_list_form_to_write() -> None:
    found = problems(
        """
        id: w
        name: W
        agents:
          triage: {model: m}
        steps:
          - {id: s, type: assign, set: {x: 1}}
        """
    )
    assert found == [
        "wf.yml:5:3: 'agents': 'agents' must be a list, not a mapping: write each entry as "
        "`- id: triage` followed by its other keys"
    ]


def test_an_agent_naming_an_unknown_tool_or_handoff_target_is_an_error_with_lines() -> None:
    found = problems(
        """
        id: w
        name: W
        agents:
          - id: triage
            model: m
            tools: [clasify_request]
            handoffs: [biling]
          - id: billing
            model: m
            tools: [refund]
        tools:
          - {id: classify_request, description: C, service: S, method: m}
        steps:
          - {id: s, type: agent, agent_id: triage, prompt: hi, output: o}
        """
    )
    assert found == [
        "wf.yml:15:36: step 's': agent 'triage' names unknown tool 'clasify_request' (line 7) "
        "(did you mean 'classify_request'?); define it under 'tools' or register a Python tool",
        "wf.yml:15:36: step 's': agent 'triage' hands off to unknown agent 'biling' (line 8) "
        "(did you mean 'billing'?)",
    ]


def test_tools_of_agents_reached_through_handoffs_are_checked_too() -> None:
    found = problems(
        """
        id: w
        name: W
        agents:
          - {id: triage, model: m, handoffs: [billing]}
          - {id: billing, model: m, tools: [refund]}
        steps:
          - {id: s, type: agent, agent_id: triage, prompt: hi, output: o}
        """
    )
    assert found == [
        "wf.yml:8:36: step 's': agent 'billing' (reached through a handoff) names unknown tool "
        "'refund' (line 6); define it under 'tools' or register a Python tool"
    ]


def test_unknown_agents_of_agent_and_handoff_steps_are_errors_at_their_keys() -> None:
    found = problems(
        """
        id: w
        name: W
        agents:
          - {id: triage, model: m}
        steps:
          - {id: a, type: agent, agent_id: triag, prompt: hi, next: h}
          - {id: h, type: handoff, to: billing, next: g}
          - {id: g, type: handoff, target_agent: "$_handoff_to"}
        """
    )
    assert found == [
        "wf.yml:7:36: step 'a': unknown agent 'triag' (did you mean 'triage'?); agents: triage",
        "wf.yml:8:32: step 'h': unknown agent 'billing'; agents: triage",
    ]


def test_python_tools_count_as_defined_and_yaml_tools_are_scoped_to_their_workflow() -> None:
    @tool
    def refund(order_id: str) -> str:
        """Refund an order."""
        return order_id

    python_tools = ToolRegistry([refund])
    text = """
        id: {wid}
        name: W
        agents:
          - {{id: a, model: m, tools: [refund, lookup]}}
        tools:
          - {{id: lookup, description: "{what}", service: S, method: m}}
        steps:
          - {{id: s, type: agent, agent_id: a, prompt: hi}}
        """
    first = load(text.format(wid="one", what="Look up orders"), python_tools)
    second = load(text.format(wid="two", what="Look up tickets"), python_tools)
    assert tools_of(first)["lookup"].description == "Look up orders"
    assert tools_of(second)["lookup"].description == "Look up tickets"


def test_an_output_tool_must_be_a_tool_of_the_agent() -> None:
    found = problems(
        """
        id: w
        name: W
        agents:
          - {id: triage, model: m, tools: [classify]}
        tools:
          - {id: classify, description: C, service: S, method: m}
        steps:
          - {id: s, type: agent, agent_id: triage, prompt: hi, output_tool: clasify}
        """
    )
    assert found == [
        "wf.yml:9:69: step 's': 'clasify' is not a tool of agent 'triage' (or of an agent it hands "
        "off to) (did you mean 'classify'?); its tools: classify"
    ]


def test_invalid_output_schemas_and_reserved_tool_names_are_refused() -> None:
    found = problems(
        """
        id: w
        name: W
        agents:
          - {id: a, model: m, output_schema: {type: objekt}}
        tools:
          - {id: transfer_to_x, description: C, service: S, method: m}
        steps:
          - {id: s, type: agent, agent_id: a, prompt: hi, output_schema: {type: 3}}
        """
    )
    assert len(found) == 3
    assert "'agents': '0.output_schema': invalid JSON Schema" in found[0]
    assert "names starting with 'transfer_to_' are reserved for handoffs" in found[1]
    assert found[2].startswith("wf.yml:9:66: step 's': 'output_schema': invalid JSON Schema")


def test_a_json_schema_in_an_agent_step_is_not_read_as_variable_references() -> None:
    workflow = load(
        """
        id: w
        name: W
        agents:
          - {id: a, model: m}
        steps:
          - id: s
            type: agent
            agent_id: a
            prompt: hi
            output: o
            output_schema:
              $defs: {cat: {enum: [x, y]}}
              type: object
              properties: {category: {$ref: "#/$defs/cat"}}
        """
    )
    assert workflow.warnings == []


def test_without_the_extension_the_sections_are_reported_as_needing_it() -> None:
    with pytest.raises(dwf.WorkflowLoadError) as info:
        dwf.load_workflow(textwrap.dedent(AGENTS))
    messages = [d.message for d in info.value.diagnostics]
    assert any("'agents' is ignored: it needs the 'ai' extension" in m for m in messages)
    assert any("belongs to the AI extension" in m for m in messages)
