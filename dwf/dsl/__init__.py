"""The workflow language: YAML (or a dict) -> a typed, validated :class:`WorkflowDefinition`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dwf.dsl.model import InputSpec, StepDef, WorkflowDefinition
from dwf.errors import WorkflowLoadError, WorkflowValidationError

if TYPE_CHECKING:
    from dwf.extensions import Registry

__all__ = ["InputSpec", "StepDef", "WorkflowDefinition", "load_workflow", "parse_workflow"]


def parse_workflow(
    source: str | bytes | os.PathLike[str] | Mapping[str, Any],
    *,
    registry: Registry | None = None,
    file: str | None = None,
) -> WorkflowDefinition:
    """Parse without the static checks. ``str``/``bytes`` are YAML text (never a path); a
    :class:`os.PathLike` is a file; a mapping is the document itself."""
    from dwf.dsl.parse import parse_document
    from dwf.dsl.yaml_source import from_mapping, load_yaml, load_yaml_file
    from dwf.extensions import default_registry

    if isinstance(source, str | bytes):
        doc = load_yaml(source, file=file)
    elif isinstance(source, os.PathLike):
        doc = load_yaml_file(source)
    elif isinstance(source, Mapping):
        doc = from_mapping(source)
        if file is not None:
            doc.file = file
    else:
        raise WorkflowLoadError(
            [],
            summary=f"cannot load a workflow from {type(source).__name__}: pass YAML text, a "
            "pathlib.Path or a dict",
        )
    definition, diagnostics = parse_document(doc, registry or default_registry())
    if definition is None:
        raise WorkflowLoadError(diagnostics)
    return definition


def load_workflow(
    source: str | bytes | os.PathLike[str] | Mapping[str, Any],
    *,
    registry: Registry | None = None,
    file: str | None = None,
    catalog: Mapping[str, WorkflowDefinition] | None = None,
) -> WorkflowDefinition:
    """Parse and validate a workflow; raise :class:`WorkflowLoadError` listing every error.
    Warnings are kept on ``definition.warnings``. ``catalog`` holds the workflows that
    ``workflow`` steps may call by id."""
    from dwf.dsl.validator import validate

    definition = parse_workflow(source, registry=registry, file=file)
    diagnostics = validate(definition, registry=registry, catalog=catalog)
    errors = [d for d in diagnostics if d.severity == "error"]
    definition.warnings.extend(d for d in diagnostics if d.severity == "warning")
    if errors:
        raise WorkflowValidationError([*errors, *definition.warnings])
    return definition


def load_workflow_file(path: str | os.PathLike[str], **kwargs: Any) -> WorkflowDefinition:
    """:func:`load_workflow` for a file path given as a string."""
    return load_workflow(Path(path), **kwargs)
