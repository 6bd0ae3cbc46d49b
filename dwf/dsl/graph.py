"""``dwf graph``: a Mermaid flowchart of a workflow, branches and loops included."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dwf.extensions import FINISHED

if TYPE_CHECKING:
    from dwf.dsl.model import StepDef, WorkflowDefinition
    from dwf.extensions import Registry

__all__ = ["mermaid"]

_SHAPES = {
    "start": ("([", "])"),
    "end": ("([", "])"),
    "router": ("{", "}"),
    "approval": ("[/", "/]"),
    "halt": ("[/", "/]"),
}


def _node_id(path: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", path)


def _label(step: StepDef) -> str:
    text = f"{step.id}<br/><i>{step.type}</i>"
    return text.replace('"', "'")


def mermaid(definition: WorkflowDefinition, registry: Registry) -> str:
    """The flowchart text (``flowchart TD``)."""
    lines = ["flowchart TD"]
    edges: list[str] = []

    def emit_steps(steps: list[StepDef], prefix: str, indent: str, fallthrough: bool) -> None:
        ids = {s.id for s in steps}
        for index, step in enumerate(steps):
            node = _node_id(prefix + step.id)
            step_type = registry.step_type(step.type)
            bodies = step_type.bodies(step)
            if bodies:
                lines.append(f'{indent}subgraph {node}_box["{step.id} ({step.type})"]')
                lines.append(f'{indent}  {node}["{_label(step)}"]')
                for body in bodies:
                    if not body.steps:
                        continue
                    emit_steps(
                        list(body.steps), f"{prefix}{step.id}.", indent + "  ", body.sequential
                    )
                    first = _node_id(f"{prefix}{step.id}.{body.steps[0].id}")
                    if body.sequential:
                        edges.append(f"{node} -->|{body.field}| {first}")
                    else:
                        for branch in body.steps:
                            edges.append(
                                f"{node} -->|branch| {_node_id(f'{prefix}{step.id}.{branch.id}')}"
                            )
                lines.append(f"{indent}end")
            else:
                left, right = _SHAPES.get(step.type, ("[", "]"))
                lines.append(f'{indent}{node}{left}"{_label(step)}"{right}')

            def target(step_id: str) -> str | None:
                if step_id == FINISHED:
                    return None
                return _node_id(prefix + step_id) if step_id in ids else None

            nxt = step.next
            if nxt is None and fallthrough and index + 1 < len(steps):
                nxt = steps[index + 1].id
            if nxt and step_type.falls_through(step) and (t := target(nxt)):
                edges.append(f"{node} --> {t}")
            for label, step_id in step_type.targets(step):
                if t := target(step_id):
                    edges.append(f"{node} -->|{label}| {t}")
            for _label_text, step_id in step_type.resume_targets(step):
                if t := target(step_id):
                    edges.append(f"{node} -.->|resume| {t}")
            if step.on_error and (t := target(step.on_error)):
                edges.append(f"{node} -.->|on_error| {t}")

    emit_steps(definition.steps, "", "  ", False)
    lines.extend(f"  {e}" for e in edges)
    return "\n".join(lines)
