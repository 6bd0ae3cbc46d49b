"""Pinned definitions: the text the store keeps for an execution, with its sub-workflows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition

__all__ = ["bundle"]


def _subworkflow_ids(workflow: WorkflowDefinition) -> set[str]:
    found = (getattr(step.config, "workflow_id", None) for step in workflow.all_steps())
    return {wid for wid in found if isinstance(wid, str)}


def bundle(
    workflow: WorkflowDefinition, catalog: Mapping[str, WorkflowDefinition]
) -> tuple[str, str, dict[str, WorkflowDefinition]]:
    """The pinned form of a workflow: its hash, the text the store keeps, and the sub-workflows
    it can start (transitively), so a resumed parent starts the children it started with."""
    needed: dict[str, WorkflowDefinition] = {}
    todo = sorted(_subworkflow_ids(workflow))
    while todo:
        wid = todo.pop()
        if wid in needed or wid not in catalog:
            continue
        needed[wid] = catalog[wid]
        todo.extend(sorted(_subworkflow_ids(catalog[wid])))
    if not needed:
        return workflow.hash, workflow.canonical_json(), needed
    doc = {
        "dwf_bundle": 1,
        "main": workflow.raw,
        "workflows": {k: needed[k].raw for k in sorted(needed)},
    }
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)  # key order is meaningful
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest(), text, needed
