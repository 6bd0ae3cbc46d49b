"""Finding the workflows to serve and the services their steps call.

The rules match the ``dwf`` command: directories are searched for ``*.yml``/``*.yaml``; a workflow
may start, as a sub-workflow, any workflow in a file beside it; ``--services`` files (and
``$DWF_SERVICES``) register every class and function they define. Paths are made absolute at once,
so the server works the same whatever directory it was started from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dwf

if TYPE_CHECKING:
    from dwf import Registry, Services, WorkflowDefinition

__all__ = ["LoadedWorkflows", "load_services", "load_workflows", "workflow_files"]

logger = logging.getLogger("dwf.mcp")


@dataclass
class LoadedWorkflows:
    """The workflows to serve (one tool each) and every workflow their sub-workflow steps may
    start (``catalog``, which includes the served ones)."""

    workflows: list[WorkflowDefinition]
    catalog: dict[str, WorkflowDefinition] = field(default_factory=dict)


def workflow_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The workflow files named by ``paths``, as absolute paths (the rules of ``dwf``)."""
    return dwf.workflow_files(Path(p).expanduser().resolve() for p in paths)


def load_workflows(
    paths: Sequence[str | os.PathLike[str]], *, registry: Registry | None = None
) -> LoadedWorkflows:
    """Load and validate the workflows to serve.

    Raises:
        dwf.WorkflowLoadError: a file is not a valid workflow (every problem, located).
        dwf.ConfigurationError: a path does not exist, or two files declare the same id.
    """
    registry = registry or dwf.Registry.with_installed_extensions()
    files = workflow_files(paths)
    # A broken neighbour is left out here and reported only if it is served.
    catalog = dwf.load_catalog(registry, beside=files)
    served: dict[str, WorkflowDefinition] = {}
    where: dict[str, Path] = {}
    for file in files:
        definition = dwf.load_workflow(file, registry=registry, catalog=catalog)
        for warning in definition.warnings:
            logger.warning("%s", warning)
        if definition.id in served:
            raise dwf.ConfigurationError(
                f"two files declare workflow id '{definition.id}': {where[definition.id]} and "
                f"{file}; ids must be unique"
            )
        served[definition.id] = definition
        where[definition.id] = file
        catalog[definition.id] = definition
    return LoadedWorkflows(workflows=list(served.values()), catalog=catalog)


def load_services(files: Sequence[str | os.PathLike[str]] = (), *, env: bool = True) -> Services:
    """A service registry from Python files, plus those in ``$DWF_SERVICES`` (``os.pathsep``
    separated) when ``env`` is true."""
    paths = [Path(f).expanduser().resolve() for f in files]
    if env:
        extra = os.environ.get("DWF_SERVICES", "")
        paths.extend(Path(p).expanduser().resolve() for p in extra.split(os.pathsep) if p)
    return dwf.Services.from_files(paths)
