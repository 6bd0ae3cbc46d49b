"""File search: the ``file_search`` step and the same search as a tool for agents.

* :func:`search` — the hits for a query over files and globs; :func:`search_files` — the same
  with the files searched, skipped and unmatched (what the step reports).
* :class:`SearchIndex` — the default backend, a SQLite FTS5 index with BM25 ranking, kept beside
  the dwf store and updated incrementally.
* :class:`FileSearchStep` / :class:`FileSearchConfig` — the step type.
* :func:`file_search_tool` and :func:`run_file_search_tool` — the agent tool's spec and call.

Local embeddings and OpenAI vector stores are not built (see ``docs/ai.md``, "File search",
"Not built").
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dwf.errors import NonRetryableError
from dwf_ai.search.index import DEFAULT_MAX_FILE_BYTES, SearchIndex, Skipped, query_terms

if TYPE_CHECKING:
    from dwf_ai.models.base import ToolSpec
    from dwf_ai.search.step import FileSearchConfig, FileSearchStep

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "FILE_SEARCH_PARAMETERS",
    "FileSearchConfig",
    "FileSearchError",
    "FileSearchStep",
    "Hit",
    "SearchIndex",
    "SearchReport",
    "Skipped",
    "file_search_tool",
    "run_file_search_tool",
    "search",
    "search_files",
]

MAX_FILES = 10_000


class FileSearchError(NonRetryableError):
    """A search that cannot run as asked: an empty query, a pattern that matches nothing, too
    many files."""


@dataclass(frozen=True)
class Hit:
    """One result: the ``file`` (relative to the base directory when inside it), the BM25
    ``score`` (higher is better), the chunk's lines ``start_line..end_line``, ``line_number`` (the
    first line there that holds a query word) and a ``snippet``."""

    file: str
    score: float
    start_line: int
    end_line: int
    line_number: int
    snippet: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "score": self.score,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "line_number": self.line_number,
            "snippet": self.snippet,
        }


@dataclass(frozen=True)
class SearchReport:
    """What :func:`search_files` did: the ``hits``, the ``files`` searched, the files
    ``skipped`` (with reasons) and the ``unmatched`` patterns."""

    query: str
    hits: list[Hit]
    files: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def to_dict(self, *, max_results: int) -> dict[str, Any]:
        """The step's output: the original's keys (``query``, ``results``, ``total``,
        ``searched_files``, ``max_results``) plus ``skipped`` and ``unmatched``."""
        return {
            "query": self.query,
            "results": [h.to_dict() for h in self.hits],
            "total": len(self.hits),
            "searched_files": len(self.files),
            "max_results": max_results,
            "skipped": self.skipped,
            "unmatched": self.unmatched,
        }


async def search_files(
    query: str,
    files: Sequence[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    max_results: int = 10,
    index: SearchIndex | None = None,
    allow_unmatched: bool = False,
) -> SearchReport:
    """Search ``files`` (paths, directories or globs relative to ``base_dir``) for ``query``.

    Args:
        query: Words to look for (any order; more matching words rank higher).
        files: Paths, directories (every file under them) or globs (``docs/**/*.md``).
        base_dir: What relative patterns are relative to (default: the current directory).
        max_results: At most this many hits.
        index: The backend (default: a :class:`SearchIndex` at its default path).
        allow_unmatched: Report patterns that match no file instead of raising.

    Raises:
        FileSearchError: The query has no words; a pattern matched nothing (unless
            ``allow_unmatched``); more than 10,000 files were named.
    """
    if not query_terms(query):
        raise FileSearchError(f"the search query {query!r} has no words to look for")
    index = index if index is not None else SearchIndex()
    return await asyncio.to_thread(
        _search_sync, query, list(files), base_dir, max_results, index, allow_unmatched
    )


def _search_sync(
    query: str,
    patterns: list[str],
    base_dir: str | os.PathLike[str] | None,
    max_results: int,
    index: SearchIndex,
    allow_unmatched: bool,
) -> SearchReport:
    from dwf_ai.search.files import resolve_files

    base = Path(base_dir if base_dir is not None else os.getcwd()).resolve()
    paths, unmatched = resolve_files(patterns, base)
    if unmatched and not allow_unmatched:
        listed = ", ".join(repr(p) for p in unmatched)
        raise FileSearchError(
            f"no file matches {listed} (relative to {base}); check the path or glob, or set "
            "'allow_empty: true' to search whatever matches",
            patterns=listed,
            base_dir=str(base),
        )
    if len(paths) > MAX_FILES:
        raise FileSearchError(
            f"the patterns name {len(paths)} files, more than the limit of {MAX_FILES}; narrow them"
        )
    skipped = index.refresh(paths)
    skipped_paths = {s.path for s in skipped}
    searchable = [p for p in paths if p not in skipped_paths]
    found = index.query(query, searchable, max_results=max_results)
    terms = query_terms(query)
    hits = [
        Hit(
            file=_display(h.path, base),
            score=h.score,
            start_line=h.start_line,
            end_line=h.end_line,
            line_number=line,
            snippet=snippet,
        )
        for h in found
        for line, snippet in [_best_line(h.text, h.start_line, terms)]
    ]
    return SearchReport(
        query=query,
        hits=hits,
        files=[_display(p, base) for p in paths],
        skipped=[{"file": _display(s.path, base), "reason": s.reason} for s in skipped],
        unmatched=unmatched,
    )


async def search(
    query: str,
    files: Sequence[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    max_results: int = 10,
    index: SearchIndex | None = None,
) -> list[Hit]:
    """The hits of :func:`search_files` (same arguments; unmatched patterns raise)."""
    report = await search_files(
        query, files, base_dir=base_dir, max_results=max_results, index=index
    )
    return report.hits


def _display(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _best_line(text: str, start_line: int, terms: list[str]) -> tuple[int, str]:
    """The chunk's line with the most query words (the first among equals), and a snippet: that
    line with its neighbours, whitespace collapsed, at most about 240 characters."""
    stems = [t[: max(4, len(t) - 3)] for t in terms]
    lines = text.splitlines()
    best, best_count = 0, 0
    for offset, line in enumerate(lines):
        lowered = line.casefold()
        count = sum(stem in lowered for stem in stems)
        if count > best_count:
            best, best_count = offset, count
    window = " ".join(" ".join(lines[max(0, best - 1) : best + 2]).split())
    if len(window) > _SNIPPET_CHARS:
        focus = " ".join(lines[best].split()) if lines else ""
        window = focus[:_SNIPPET_CHARS].rstrip() + (" …" if len(focus) > _SNIPPET_CHARS else "")
    return start_line + best, window


_SNIPPET_CHARS = 240


# --------------------------------------------------------------------------------------------
# The agent tool

#: The JSON Schema of the tool's arguments.
FILE_SEARCH_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "Words to search the files for."},
        "max_results": {
            "type": "integer",
            "minimum": 1,
            "maximum": 50,
            "description": "How many passages to return (default 5).",
        },
    },
    "required": ["query"],
    "additionalProperties": False,
}


def file_search_tool(
    name: str = "file_search",
    description: str = (
        "Search the documents available to you for passages matching a query. Returns file "
        "names, line ranges and snippets, best match first."
    ),
) -> ToolSpec:
    """The tool's :class:`~dwf_ai.models.ToolSpec` (the files are chosen by the workflow, not
    by the model: it only sends a query)."""
    from dwf_ai.models.base import ToolSpec

    return ToolSpec(name=name, description=description, parameters=FILE_SEARCH_PARAMETERS)


async def run_file_search_tool(
    arguments: Mapping[str, Any],
    *,
    files: Sequence[str],
    base_dir: str | os.PathLike[str] | None = None,
    index: SearchIndex | None = None,
    default_max_results: int = 5,
) -> str:
    """Run the tool call ``arguments`` (``{"query", "max_results"?}``) and return the JSON text
    for the model: ``{"results": [...], "skipped": [...]}`` or ``{"error": "..."}``."""
    query = arguments.get("query")
    limit = arguments.get("max_results", default_max_results)
    if not isinstance(query, str) or not query.strip():
        return json.dumps({"error": "'query' must be a non-empty string"})
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
        return json.dumps({"error": "'max_results' must be an integer from 1 to 50"})
    try:
        report = await search_files(
            query, files, base_dir=base_dir, max_results=limit, index=index, allow_unmatched=True
        )
    except FileSearchError as exc:
        return json.dumps({"error": exc.message})
    return json.dumps(
        {"results": [h.to_dict() for h in report.hits], "skipped": report.skipped},
        ensure_ascii=False,
    )


def __getattr__(name: str) -> Any:
    # The step module imports dwf's step API; load it on first use.
    if name in ("FileSearchStep", "FileSearchConfig"):
        from dwf_ai.search import step

        return getattr(step, name)
    raise AttributeError(f"module 'dwf_ai.search' has no attribute {name!r}")
