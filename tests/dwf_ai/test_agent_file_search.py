"""``file_search`` offered to agents as a tool: the workflow picks the files (relative to the
workflow file), the model sends a query."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import dwf
from dwf_ai import AIExtension
from dwf_ai.search import SearchIndex
from dwf_ai.testing import ScriptedModel

WORKFLOW = """
id: kb
name: Knowledge base
agents:
  - id: helper
    model: m
    instructions: Answer from the documents.
    file_search:
      files: [docs/*.md]
      max_results: 2
steps:
  - {id: ask, type: agent, agent_id: helper, prompt: "$input.question", output: answer, next: done}
  - {id: done, type: end, result: {answer: $answer}}
"""


def write_kb(root: Path, workflow: str = WORKFLOW) -> Path:
    docs = root / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text(
        "# Refunds\n\nRefunds are issued within 14 days of the return arriving.\n"
    )
    (docs / "shipping.md").write_text("# Shipping\n\nOrders ship from Leeds within two days.\n")
    (docs / "privacy.md").write_text("# Privacy\n\nWe keep order records for six years.\n")
    path = root / "kb.yml"
    path.write_text(workflow)
    return path


def engine_for(tmp_path: Path, turns: list[Any]) -> tuple[dwf.Engine, dwf.Registry, ScriptedModel]:
    model = ScriptedModel(turns, name="m")
    registry = dwf.default_registry()
    index = SearchIndex(tmp_path / "index.db")
    registry.install(AIExtension(models={"m": model}, search_index=index))
    return dwf.Engine("memory://", registry=registry), registry, model


def search(query: str, **extra: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": "file_search", "arguments": {"query": query, **extra}}]}


async def test_the_agent_searches_the_files_next_to_its_workflow(tmp_path: Path) -> None:
    path = write_kb(tmp_path)  # the current directory (the repository) has a docs/ too
    engine, registry, model = engine_for(
        tmp_path, [search("when are refunds issued"), "Within 14 days."]
    )
    result = await engine.run(
        dwf.load_workflow(path, registry=registry), {"question": "Refund time?"}
    )

    assert result.output == {"answer": "Within 14 days."}
    [offered] = model.requests[0].tools
    assert offered.name == "file_search"
    assert offered.parameters["properties"]["max_results"]["maximum"] == 2
    [tool_message] = [m for m in model.requests[1].messages if m["role"] == "tool"]
    found = json.loads(tool_message["content"])
    assert found["results"][0]["file"] == "docs/refunds.md"
    assert "14 days" in found["results"][0]["snippet"]
    assert len(found["results"]) <= 2


async def test_asking_for_more_results_than_allowed_is_an_error_for_the_model(
    tmp_path: Path,
) -> None:
    path = write_kb(tmp_path)
    engine, registry, model = engine_for(
        tmp_path, [search("orders", max_results=10), search("orders"), "Leeds."]
    )
    result = await engine.run(dwf.load_workflow(path, registry=registry), {"question": "Where?"})

    assert result.output == {"answer": "Leeds."}
    first = next(m for m in model.requests[1].messages if m["role"] == "tool")["content"]
    assert first.startswith("Error: invalid arguments for tool 'file_search': max_results")
    second = [m for m in model.requests[2].messages if m["role"] == "tool"][1]["content"]
    assert len(json.loads(second)["results"]) == 2  # the agent's max_results is the default


async def test_a_workflow_without_a_file_searches_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_kb(tmp_path)
    monkeypatch.chdir(tmp_path)
    engine, registry, model = engine_for(tmp_path, [search("six years"), "Six years."])
    result = await engine.run(
        dwf.load_workflow(WORKFLOW, registry=registry), {"question": "Retention?"}
    )
    assert result.output == {"answer": "Six years."}
    content = next(m for m in model.requests[1].messages if m["role"] == "tool")["content"]
    assert json.loads(content)["results"][0]["file"] == "docs/privacy.md"


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ("{id: a, model: m, file_search: {files: []}}", "at least 1 item"),
        ("{id: a, model: m, file_search: {files: [x], max_results: 99}}", "less than or equal"),
        (
            "{id: a, model: m, tools: [file_search], file_search: [docs/*.md]}",
            "the file_search tool is named 'file_search', like a tool in 'tools'",
        ),
    ],
)
def test_file_search_mistakes_are_load_errors(agent: str, message: str) -> None:
    registry = dwf.default_registry()
    registry.install(AIExtension(models={"m": ScriptedModel([])}))
    text = f"""
    id: w
    name: W
    agents: [{agent}]
    steps: [{{id: s, type: agent, agent_id: a, prompt: hi}}]
    """
    with pytest.raises(dwf.WorkflowLoadError) as caught:
        dwf.load_workflow(textwrap.dedent(text), registry=registry)
    assert message in str(caught.value)
