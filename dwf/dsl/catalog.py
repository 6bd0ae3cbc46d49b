"""Finding workflow files, and the catalog of workflows that ``workflow`` steps may start.

The rules the ``dwf`` command and the MCP server share: a directory is searched recursively for
``*.yml``/``*.yaml``; a workflow may start any workflow in a file beside it, or in the extra
paths given (``--workflows``). Files that do not parse are left out of a catalog (validating
them reports their errors).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dwf.errors import ConfigurationError, DwfError

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition
    from dwf.extensions import Registry

__all__ = ["WORKFLOW_SUFFIXES", "load_catalog", "workflow_files"]

WORKFLOW_SUFFIXES = (".yml", ".yaml")


def workflow_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The workflow files named by ``paths`` (files, or directories searched recursively), in
    order, without repeats. Raises :class:`ConfigurationError` for a path that does not exist
    or a directory without workflow files."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix in WORKFLOW_SUFFIXES and p.is_file()
            )
            if not found:
                raise ConfigurationError(f"no workflow files (*.yml, *.yaml) under '{raw}'")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise ConfigurationError(f"'{raw}' does not exist")
    return list(dict.fromkeys(files))


def load_catalog(
    registry: Registry,
    beside: Iterable[str | os.PathLike[str]] = (),
    extra: Iterable[str | os.PathLike[str]] = (),
) -> dict[str, WorkflowDefinition]:
    """The workflows in the files beside each of ``beside`` and in ``extra`` (files or
    directories), by id; the first file that declares an id wins."""
    from dwf.dsl import parse_workflow

    candidates: list[Path] = []
    for main in beside:
        folder = Path(main).expanduser().resolve().parent
        candidates.extend(
            p for p in sorted(folder.iterdir()) if p.suffix in WORKFLOW_SUFFIXES and p.is_file()
        )
    candidates.extend(workflow_files(extra))
    catalog: dict[str, WorkflowDefinition] = {}
    for path in dict.fromkeys(candidates):
        try:
            definition = parse_workflow(path, registry=registry)
        except DwfError:
            continue
        catalog.setdefault(definition.id, definition)
    return catalog
