"""File search: the FTS5 index (ranking, chunks, incremental updates, bad input), the
``file_search`` step (paths relative to the workflow file, output shape, errors) and the agent
tool."""

from __future__ import annotations

import itertools
import json
import os
import re
import textwrap
from pathlib import Path

import pytest

import dwf
from dwf_ai.search import (
    FileSearchError,
    FileSearchStep,
    SearchIndex,
    file_search_tool,
    run_file_search_tool,
    search,
    search_files,
)
from dwf_ai.search.files import split_chunks
from dwf_ai.search.index import default_index_path

CONFIG_MD = """\
# Configuration

Settings are read from dwf.toml.

## Logging

Configure logging with the `log_level` setting; logs go to stderr.
Handlers are configured in logging.yaml.
"""

INSTALL_MD = "# Install\n\npip install dwf\n\nThen run `dwf --help`.\n"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "configuration.md").write_text(CONFIG_MD)
    (tmp_path / "docs" / "install.md").write_text(INSTALL_MD)
    (tmp_path / "docs" / "api.py").write_text(
        'def rotate_handlers(days):\n    """Rotate log files older than days."""\n'
    )
    (tmp_path / "settings.json").write_text('{"log_level": "info", "retries": 3}\n')
    (tmp_path / "settings.yaml").write_text("log_level: info\nretries: 3\n")
    return tmp_path


@pytest.fixture
def index(tmp_path: Path) -> SearchIndex:
    return SearchIndex(tmp_path / "index" / "dwf-search.db")


async def test_the_best_chunk_comes_first_with_its_line_range(
    docs: Path, index: SearchIndex
) -> None:
    hits = await search("how to configure logging", ["docs/*.md"], base_dir=docs, index=index)
    assert hits[0].file == "docs/configuration.md"
    assert (hits[0].start_line, hits[0].end_line) == (1, 8)
    assert hits[0].line_number == 7  # "Configure logging with ..."
    assert "logging" in hits[0].snippet.lower()
    assert all(h.file != "docs/install.md" for h in hits)  # no query word there


async def test_text_code_json_and_yaml_are_searched(docs: Path, index: SearchIndex) -> None:
    hits = await search("log_level", ["**/*"], base_dir=docs, index=index, max_results=10)
    assert {h.file for h in hits} >= {"settings.json", "settings.yaml", "docs/configuration.md"}
    code = await search("rotate handlers", ["docs"], base_dir=docs, index=index)
    assert code[0].file == "docs/api.py"


async def test_order_is_deterministic_score_then_path_then_line(tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt", "c.txt"):
        (tmp_path / name).write_text("refund policy\n")
    index = SearchIndex(tmp_path / "i.db")
    hits = await search("refund", ["*.txt"], base_dir=tmp_path, index=index)
    assert [h.file for h in hits] == ["a.txt", "b.txt", "c.txt"]
    assert len({h.score for h in hits}) == 1
    assert hits == await search("refund", ["*.txt"], base_dir=tmp_path, index=index)


async def test_max_results_limits_the_hits(docs: Path, index: SearchIndex) -> None:
    hits = await search("logging", ["**/*"], base_dir=docs, index=index, max_results=1)
    assert len(hits) == 1


async def test_changed_files_are_reindexed_and_unchanged_ones_are_not(
    docs: Path, index: SearchIndex
) -> None:
    target = docs / "docs" / "install.md"
    assert await search("kubernetes", ["docs/*.md"], base_dir=docs, index=index) == []
    target.write_text(INSTALL_MD + "\nDeploy on kubernetes with the helm chart.\n")
    os.utime(target, ns=(1, 1))  # a different mtime even on coarse clocks
    hits = await search("kubernetes", ["docs/*.md"], base_dir=docs, index=index)
    assert [(h.file, h.line_number) for h in hits] == [("docs/install.md", 7)]

    # Same content, new mtime: only the bookkeeping changes (the hash matches).
    os.utime(target, ns=(2, 2))
    assert await search("kubernetes", ["docs/*.md"], base_dir=docs, index=index) == hits
    target.unlink()
    assert index.prune() == 1


async def test_binary_and_oversized_files_are_skipped_and_reported(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the quarterly report is attached\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00report")
    with (tmp_path / "huge.log").open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # 50 MB, sparse: never read
    report = await search_files(
        "report", ["*"], base_dir=tmp_path, index=SearchIndex(tmp_path / "i.db")
    )
    assert [h.file for h in report.hits] == ["notes.txt"]
    assert report.skipped == [
        {"file": "huge.log", "reason": "larger than the 10.0 MB limit (50.0 MB)"},
        {"file": "image.png", "reason": "binary file (contains NUL bytes)"},
    ]


async def test_a_pattern_that_matches_nothing_is_an_error_unless_allowed(
    docs: Path, index: SearchIndex
) -> None:
    with pytest.raises(FileSearchError, match=re.escape("no file matches 'manuals/*.pdf'")):
        await search("x", ["manuals/*.pdf"], base_dir=docs, index=index)
    report = await search_files(
        "logging", ["docs/*.md", "manuals/*.pdf"], base_dir=docs, index=index,
        allow_unmatched=True,
    )  # fmt: skip
    assert report.unmatched == ["manuals/*.pdf"]
    assert report.hits


async def test_a_query_without_words_is_an_error(docs: Path, index: SearchIndex) -> None:
    with pytest.raises(FileSearchError, match="no words"):
        await search(" ?! ", ["docs"], base_dir=docs, index=index)


async def test_queries_with_fts_syntax_are_taken_literally(docs: Path, index: SearchIndex) -> None:
    hits = await search('"logging" AND NOT (x OR y) col:', ["docs"], base_dir=docs, index=index)
    assert "docs/configuration.md" in {h.file for h in hits}


async def test_pdf_files_are_searched_when_pypdf_is_installed(tmp_path: Path) -> None:
    (tmp_path / "manual.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    report = await search_files(
        "manual", ["manual.pdf"], base_dir=tmp_path, index=SearchIndex(tmp_path / "i.db")
    )
    assert report.hits == []
    [skipped] = report.skipped
    try:
        import pypdf  # noqa: F401
    except ImportError:
        assert skipped["reason"] == 'PDF support needs pypdf: pip install "dwf[search]"'
    else:
        assert skipped["reason"].startswith("unreadable PDF")


def test_chunks_keep_line_ranges_and_split_long_lines() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 101)) + "\n" + "x" * 9000
    chunks = split_chunks(text)
    assert chunks[0].start_line == 1
    assert all(
        a.end_line < b.start_line or a.end_line == b.start_line == 101
        for a, b in itertools.pairwise(chunks)
    )
    assert [c.start_line for c in chunks if c.start_line == 101] == [101] * 6  # 9000 / 1500


def test_the_index_lives_beside_the_store_unless_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DWF_SEARCH_INDEX", raising=False)
    monkeypatch.setenv("DWF_STORE", f"sqlite:///{tmp_path}/runs/dwf.db")
    assert default_index_path() == tmp_path / "runs" / "dwf-search.db"
    monkeypatch.setenv("DWF_STORE", "memory://")
    assert default_index_path().name == "dwf-search.db"
    monkeypatch.setenv("DWF_SEARCH_INDEX", str(tmp_path / "elsewhere.db"))
    assert default_index_path() == tmp_path / "elsewhere.db"


# ---- the step


def registry_with(index: SearchIndex) -> dwf.Registry:
    registry = dwf.default_registry()
    registry.register_step(FileSearchStep(index=index))
    return registry


WORKFLOW = """\
id: file_search_demo
name: File search demo
inputs:
  query: {type: string}
steps:
  - id: search_docs
    type: file_search
    query: $input.query
    files: [docs/*.md, docs/api.py, missing.md]
    max_results: 3
    allow_empty: true
    output: search_results
    next: done
  - id: done
    type: end
    result:
      results: $search_results.results
      total: $search_results.total
"""


async def test_the_step_searches_relative_to_the_workflow_file(
    docs: Path, index: SearchIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = docs / "flow.yml"
    path.write_text(WORKFLOW)
    monkeypatch.chdir(tmp_path.parent)  # not the workflow's folder
    registry = registry_with(index)
    engine = dwf.Engine("memory://", registry=registry)
    workflow = dwf.load_workflow(path, registry=registry)
    result = await engine.run(workflow, {"query": "configure logging"})
    assert result.completed, result.error
    assert result.output["results"][0]["file"] == "docs/configuration.md"
    assert result.output["total"] == len(result.output["results"]) <= 3
    [entry, _] = await engine.entries(result.execution_id)
    assert entry.output["query"] == "configure logging"
    assert entry.output["searched_files"] == 3
    assert entry.output["max_results"] == 3
    assert entry.output["unmatched"] == ["missing.md"]


async def test_a_workflow_without_a_file_uses_the_current_directory(
    docs: Path, index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(docs)
    registry = registry_with(index)
    workflow = dwf.load_workflow(
        {
            "id": "w", "name": "w",
            "steps": [{"id": "s", "type": "file_search", "query": "install", "files": "docs/*.md",
                       "output": "found"}],
        },
        registry=registry,
    )  # fmt: skip
    engine = dwf.Engine("memory://", registry=registry)
    result = await engine.run(workflow)
    assert result.completed, result.error
    [entry] = await engine.entries(result.execution_id)
    assert entry.output["results"][0]["file"] == "docs/install.md"


async def test_the_step_fails_clearly_when_nothing_matches(
    docs: Path, index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(docs)
    registry = registry_with(index)
    workflow = dwf.load_workflow(
        textwrap.dedent(
            """\
            id: w
            name: w
            steps:
              - id: lookup
                type: file_search
                query: refunds
                files: [policies/*.md]
            """
        ),
        registry=registry,
    )
    result = await dwf.Engine("memory://", registry=registry).run(workflow)
    assert result.failed
    assert result.error is not None
    assert result.error["type"] == "FileSearchError"
    assert result.error["message"].startswith(
        "file_search 'lookup': no file matches 'policies/*.md'"
    )


def test_the_step_config_is_validated(index: SearchIndex) -> None:
    registry = registry_with(index)
    with pytest.raises(dwf.WorkflowLoadError, match="query"):
        dwf.load_workflow(
            "id: w\nname: w\nsteps:\n  - id: s\n    type: file_search\n    files: [a]\n",
            registry=registry,
        )
    with pytest.raises(dwf.WorkflowLoadError, match="max_results"):
        dwf.load_workflow(
            "id: w\nname: w\nsteps:\n  - id: s\n    type: file_search\n    query: q\n"
            "    max_results: 0\n",
            registry=registry,
        )


# ---- the agent tool


async def test_the_agent_tool_searches_the_workflows_files(docs: Path, index: SearchIndex) -> None:
    spec = file_search_tool()
    assert spec.name == "file_search"
    assert spec.parameters["required"] == ["query"]
    text = await run_file_search_tool(
        {"query": "logging", "max_results": 2}, files=["docs/*.md"], base_dir=docs, index=index
    )
    answer = json.loads(text)
    assert answer["results"][0]["file"] == "docs/configuration.md"
    assert len(answer["results"]) <= 2


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, "'query' must be a non-empty string"),
        ({"query": "x", "max_results": 500}, "'max_results' must be an integer from 1 to 50"),
        ({"query": "?!"}, "has no words"),
    ],
)
async def test_the_agent_tool_answers_bad_calls_with_an_error(
    docs: Path, index: SearchIndex, arguments: dict[str, object], error: str
) -> None:
    answer = json.loads(
        await run_file_search_tool(arguments, files=["docs"], base_dir=docs, index=index)
    )
    assert error in answer["error"]
