"""``file_search``: search files for a query and store the best passages.

::

    - id: search_docs
      type: file_search
      query: $input.query
      files: [docs/*.md, README.md, manuals/]   # relative to the workflow file's folder
      max_results: 3
      output: search_results                    # {query, results, total, searched_files, ...}

Paths are relative to the folder of the workflow file; a workflow given as a dict or as YAML text
(no file) uses the current directory. A pattern that matches no file fails the step (set
``allow_empty: true`` to search whatever matches and report the rest in ``unmatched``). Binary
files and files over the size limit are skipped and listed in ``skipped``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field

from dwf import expr
from dwf.dsl.model import StepDef
from dwf.extensions import Continue, Outcome, StepConfig, StepType
from dwf.runtime import StepContext
from dwf_ai.search import FileSearchError, SearchIndex, search_files

__all__ = ["FileSearchConfig", "FileSearchStep"]


class FileSearchConfig(StepConfig):
    """``query``, ``files``, ``max_results``, ``output`` and ``allow_empty``."""

    query: Any
    #: Paths, directories or globs; or one string (a pattern, or a reference to a list).
    files: list[str] | str = Field(default_factory=list)
    max_results: int = Field(default=10, ge=1, le=1000)
    output: str | None = None
    #: Search whatever matches when a pattern matches no file, instead of failing.
    allow_empty: bool = False


class FileSearchStep(StepType[FileSearchConfig]):
    """The ``file_search`` step type.

    Args:
        index: The search backend: a :class:`SearchIndex`, or the path of its file (default:
            ``dwf-search.db`` beside the dwf store; see
            :func:`~dwf_ai.search.index.default_index_path`).
    """

    name = "file_search"
    config_model = FileSearchConfig
    description = "Search files (paths or globs) for a query; store the best passages."

    def __init__(self, index: SearchIndex | str | os.PathLike[str] | None = None) -> None:
        self.index = index if isinstance(index, SearchIndex) else SearchIndex(index)

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        config: FileSearchConfig = step.config  # type: ignore[assignment]
        query = expr.render(ctx.resolve(config.query))
        patterns = _patterns(ctx.resolve(config.files), step.id)
        base_dir = _base_dir(ctx.workflow.file)
        try:
            report = await search_files(
                query,
                patterns,
                base_dir=base_dir,
                max_results=config.max_results,
                index=self.index,
                allow_unmatched=config.allow_empty,
            )
        except FileSearchError as exc:
            raise FileSearchError(f"file_search '{step.id}': {exc.message}", step=step.id) from exc
        output = report.to_dict(max_results=config.max_results)
        if config.output is not None:
            ctx.set(config.output, output)
        return Continue(output=output)


def _base_dir(workflow_file: str | None) -> Path:
    if workflow_file is None:
        return Path.cwd()
    return Path(workflow_file).resolve().parent


def _patterns(value: Any, step_id: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise FileSearchError(
        f"file_search '{step_id}': 'files' must be a list of paths or globs, got "
        f"{expr.type_name(value)}",
        step=step_id,
    )
