"""Static checks of a loaded workflow: every problem at once, each located at its field.

Checks, all through the :class:`~dwf.extensions.StepType` hooks (extension steps are checked
like the core ones):

* the workflow has steps, and step ids are unique, nested steps included;
* every jump (``next``, ``on_error``, ``targets()``, ``resume_targets()``) goes to a step of the
  same list or to ``__FINISHED__``: top-level steps to top-level steps, steps of a loop body to
  steps of that body (no ``next`` ends the iteration); a parallel branch is one step, so it
  jumps nowhere (``__FINISHED__`` ends the branch);
* ``workflow`` steps call workflows of the ``catalog`` (when one is given);
* each step type's own ``check()``;
* steps that are never reached (a warning);
* variables are set before they are read, and paths below a step output fit its output schema
  (see :mod:`dwf.dsl._dataflow`).

Each step list is a :class:`Frame` with its graph: edges are ``next`` (when the step falls
through), ``on_error``, ``targets()`` and ``resume_targets()`` (a halt's ``resume_step`` counts),
and ``order`` lists the steps reachable from the first one. Parallel branches form a frame of
independent steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dwf.dsl._dataflow import VariableCheck, field_path
from dwf.dsl.model import StepDef, WorkflowDefinition
from dwf.errors import Diagnostic, Severity
from dwf.extensions import FINISHED, BodySpec, Registry, StepType, default_registry, did_you_mean

__all__ = ["validate"]


def validate(
    definition: WorkflowDefinition,
    *,
    registry: Registry | None = None,
    catalog: Mapping[str, WorkflowDefinition] | None = None,
) -> list[Diagnostic]:
    """Check a parsed workflow and return every problem found, errors and warnings.

    Args:
        definition: The workflow, as :func:`dwf.dsl.parse_workflow` returns it.
        registry: The step types to analyse steps with; the core ones by default.
        catalog: The workflows that ``workflow`` steps may call, by id; ``None`` skips that check.

    Returns:
        Diagnostics in source order; ``severity`` tells errors from warnings.
    """
    report = Reporter(definition)
    if not definition.steps:
        report.add("a workflow needs at least one step", path=("steps",))
        return report.diagnostics()
    hooks = Hooks(registry or default_registry())
    top = build_frame(definition.steps, hooks)
    homes = _check_ids(top, report)
    checker = _StructureCheck(definition, hooks, report, catalog, homes)
    for frame in top.walk():
        checker.frame(frame)
    VariableCheck(definition, hooks, report).run(top)
    for key, spec in hooks.registry.top_level_keys.items():
        if spec.check is not None and key in definition.extensions:
            for path, message in spec.check(definition.extensions[key], definition):
                report.add(message, None, (key, *path))
    return report.diagnostics()


def _check_ids(top: Frame, report: Reporter) -> dict[str, Frame]:
    """Report duplicate ids; return the frame each id is defined in (the first definition)."""
    first: dict[str, StepDef] = {}
    homes: dict[str, Frame] = {}
    for frame in top.walk():
        for step in frame.steps:
            earlier = first.get(step.id)
            if earlier is None:
                first[step.id] = step
                homes[step.id] = frame
                continue
            line = report.line_of(earlier)
            where = f" (first defined at line {line})" if line is not None else ""
            report.add(f"duplicate step id '{step.id}'{where}", step, ("id",))
    return homes


class _StructureCheck:
    def __init__(
        self,
        definition: WorkflowDefinition,
        hooks: Hooks,
        report: Reporter,
        catalog: Mapping[str, WorkflowDefinition] | None,
        homes: dict[str, Frame],
    ) -> None:
        self.definition = definition
        self.hooks = hooks
        self.report = report
        self.catalog = catalog
        self.homes = homes

    def frame(self, frame: Frame) -> None:
        reached = set(frame.order)
        for i, step in enumerate(frame.steps):
            if not self.hooks.registry.has_step(step.type):
                message = self.hooks.registry.unknown_step_message(step.type)
                self.report.add(message, step, ("type",))
            self._jumps(frame, step)
            self._sub_workflow(step)
            for label, message in self.hooks.of(step).check(step, self.definition):
                self.report.add(message, step, field_path(step, label))
            if i not in reached:
                message = "unreachable: no step leads here"
                self.report.add(message, step, ("id",), severity="warning")

    def _jumps(self, frame: Frame, step: StepDef) -> None:
        step_type = self.hooks.of(step)
        found = jumps(step, step_type)
        reported: set[tuple[str, str]] = set()
        for jump in found:
            where = field_path(step, jump.label)
            if jump.target == FINISHED or (jump.label, jump.target) in reported:
                continue
            reported.add((jump.label, jump.target))
            if frame.kind == "branches":
                self.report.add(_branch_jump(jump.label, jump.target), step, where)
            elif jump.target not in frame.index:
                self.report.add(self._unknown(frame, jump.label, jump.target), step, where)
        others = {jump.target for jump in found if jump.kind in ("target", "resume")}
        if step.next is not None and not step_type.falls_through(step) and step.next not in others:
            message = f"'next' is ignored: {step.type} steps never continue to their 'next'"
            self.report.add(message, step, ("next",), severity="warning")

    def _unknown(self, frame: Frame, label: str, target: str) -> str:
        home = self.homes.get(target)
        if home is None:
            return f"'{label}' refers to unknown step '{target}'{did_you_mean(target, frame.index)}"
        message = (
            f"'{label}' refers to step '{target}', which is in {home.where}, not in "
            f"{frame.where}; a step can only go to steps of its own list"
        )
        if label == "next":
            ending = "workflow" if frame.kind == "top" else "iteration"
            message += f" (leave 'next' empty to end the {ending})"
        return message

    def _sub_workflow(self, step: StepDef) -> None:
        workflow_id = getattr(step.config, "workflow_id", None)
        if self.catalog is None or step.type != "workflow" or not isinstance(workflow_id, str):
            return
        if workflow_id in self.catalog or workflow_id == self.definition.id:
            return
        known = ", ".join(sorted(self.catalog)) or "(none)"
        hint = did_you_mean(workflow_id, self.catalog)
        message = f"unknown workflow '{workflow_id}'{hint}; known workflows: {known}"
        self.report.add(message, step, ("workflow_id",))


def _branch_jump(label: str, target: str) -> str:
    if label == "next":
        return (
            f"'next' of a parallel branch must be empty, got '{target}': a branch is one step "
            "and ends after it"
        )
    message = (
        f"'{label}' of a parallel branch cannot go to '{target}': a branch is one step; use "
        f"'{FINISHED}' to end the branch"
    )
    return message + (", or put 'on_error' on the parallel step" if label == "on_error" else "")


# ------------------------------------------------------------------------------------------
# The step graphs (also used by dwf.dsl._dataflow)


FrameKind = Literal["top", "body", "branches"]


class Reporter:
    """Collects diagnostics located at a step's field (or the step, or the document)."""

    def __init__(self, definition: WorkflowDefinition) -> None:
        self.definition = definition
        self._found: list[Diagnostic] = []

    def add(
        self,
        message: str,
        step: StepDef | None = None,
        path: tuple[str | int, ...] = (),
        *,
        severity: Severity = "error",
    ) -> None:
        full = (step.source_path if step is not None else ()) + path
        mark = self.definition.mark(full)
        self._found.append(
            Diagnostic(
                message,
                file=self.definition.file,
                line=mark.line if mark else None,
                column=mark.column if mark else None,
                step_id=step.id if step is not None else None,
                severity=severity,
            )
        )

    def line_of(self, step: StepDef) -> int | None:
        mark = self.definition.mark((*step.source_path, "id"))
        return mark.line if mark else None

    def diagnostics(self) -> list[Diagnostic]:
        """Everything found, in source order (unlocated ones last, in the order found)."""
        return sorted(self._found, key=lambda d: (d.line is None, d.line or 0, d.column or 0))


class Hooks:
    """The registry's step types; an unregistered type gets the neutral base hooks."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._neutral: StepType[Any] = StepType()

    def of(self, step: StepDef) -> StepType[Any]:
        if self.registry.has_step(step.type):
            return self.registry.step_type(step.type)
        return self._neutral


@dataclass(frozen=True)
class Jump:
    """A place a step can go: ``label`` is the field (``next``, ``routes[0].then``)."""

    label: str
    target: str
    kind: Literal["next", "error", "target", "resume"]


def jumps(step: StepDef, step_type: StepType[Any]) -> list[Jump]:
    """Every jump of a step (a halt's ``next`` is there twice: as ``next`` and to resume)."""
    found = []
    if step.next is not None:
        found.append(Jump("next", step.next, "next"))
    if step.on_error is not None:
        found.append(Jump("on_error", step.on_error, "error"))
    found += [Jump(label, t, "target") for label, t in step_type.targets(step) if t]
    found += [Jump(label, t, "resume") for label, t in step_type.resume_targets(step) if t]
    return found


@dataclass
class Frame:
    """One list of steps and its graph.

    ``edges[i]`` are ``(j, is_error)`` pairs; ``order`` holds the steps reachable from the first
    one in reverse postorder (every step for ``branches``); ``children[i]`` the frames of the
    bodies of step ``i``.
    """

    steps: Sequence[StepDef]
    kind: FrameKind
    where: str
    index: dict[str, int]
    edges: list[list[tuple[int, bool]]]
    order: list[int]
    children: list[list[tuple[BodySpec, Frame]]]

    def walk(self) -> Iterator[Frame]:
        """This frame and every nested one, depth first."""
        yield self
        for bodies in self.children:
            for _, child in bodies:
                yield from child.walk()


def build_frame(
    steps: Sequence[StepDef],
    hooks: Hooks,
    kind: FrameKind = "top",
    where: str = "the top-level steps",
) -> Frame:
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        index.setdefault(step.id, i)
    edges: list[list[tuple[int, bool]]] = [[] for _ in steps]
    children: list[list[tuple[BodySpec, Frame]]] = []
    for i, step in enumerate(steps):
        step_type = hooks.of(step)
        if kind != "branches":
            falls_through = step_type.falls_through(step)
            for jump in jumps(step, step_type):
                j = index.get(jump.target)
                if j is not None and (jump.kind != "next" or falls_through):
                    edges[i].append((j, jump.kind == "error"))
            if kind == "body" and step.next is None and i + 1 < len(steps):
                # In a body, a step without `next` continues with the following one (for a
                # halt: when it is resumed).
                resumes_on = not (step_type.targets(step) or step_type.resume_targets(step))
                if falls_through or (resumes_on and step.type != "end"):
                    edges[i].append((i + 1, False))
        nested = []
        for body in step_type.bodies(step):
            inner: FrameKind = "body" if body.sequential else "branches"
            label = f"the '{body.field}' of step '{step.id}'"
            nested.append((body, build_frame(body.steps, hooks, inner, label)))
        children.append(nested)
    order = list(range(len(steps))) if kind == "branches" else _reverse_postorder(edges)
    return Frame(steps, kind, where, index, edges, order, children)


def _reverse_postorder(edges: list[list[tuple[int, bool]]]) -> list[int]:
    if not edges:
        return []
    seen = [False] * len(edges)
    seen[0] = True
    postorder: list[int] = []
    stack = [(0, iter(edges[0]))]
    while stack:
        node, successors = stack[-1]
        for j, _ in successors:
            if not seen[j]:
                seen[j] = True
                stack.append((j, iter(edges[j])))
                break
        else:
            stack.pop()
            postorder.append(node)
    postorder.reverse()
    return postorder
