"""The step graphs of a workflow and which variables are set before each step reads them.

Every step list is a :class:`Frame`: the top-level steps, each sequential body (a loop's ``do``,
run as a small graph from its first step) and each set of parallel branches (independent steps).
Edges are ``next`` (when the step falls through), ``on_error``, ``targets()`` and
``resume_targets()``; only the :class:`~dwf.extensions.StepType` hooks are used, so extension
step types are analysed like the core ones.

:class:`VariableCheck` is a forward dataflow analysis. For each step it computes the variables
set on *every* path reaching it (intersection over predecessors) and on *some* path (union), with
a worklist in reverse postorder: each step is revisited only when the sets at its entry change,
and they only shrink (every path) or grow (some path), so the work is linear in the size of the
workflow times the number of variables, never one walk per path. Reading a variable set on
every path is fine, on some path a warning (it reads as null elsewhere), on none an error.

What a step sets (:class:`Effects`): its ``outputs()`` on its normal edges; on its ``on_error``
edge only ``_last_error`` (the failed step's own writes are discarded), which the handler sees
and which is cleared once the handler completes. A body's writes are possibly set after the step
(a loop may run zero times); the writes of parallel branches are definitely set when the step
waits for all of them. A body's ``scope`` names (``item``, ``index``) are visible inside it, and
after the step only when the body ``exports`` them.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dwf import expr
from dwf.dsl.model import StepDef, WorkflowDefinition
from dwf.errors import Diagnostic, Severity
from dwf.extensions import BodySpec, Registry, StepType, did_you_mean

__all__ = ["Effects", "Frame", "Hooks", "Jump", "Reporter", "VariableCheck", "build_frame"]

#: References that are always valid: the run input, the clock and the execution history.
ROOTS = ("input", "now", "history")
LAST_ERROR = "_last_error"
_LAST_ERROR = frozenset({LAST_ERROR})
_EMPTY: frozenset[str] = frozenset()
_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

Names = frozenset[str]
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


def field_path(step: StepDef, label: str) -> tuple[str | int, ...]:
    """``"routes[0].when.field"`` -> ``("routes", 0, "when", "field")``; the first part is
    mapped from the config attribute to its YAML key (``as_`` -> ``as``)."""
    parts: list[str | int] = [
        int(index) if index else name for name, index in _FIELD_PART.findall(label)
    ]
    if parts and isinstance(parts[0], str):
        info = type(step.config).model_fields.get(parts[0])
        if info is not None and info.alias:
            parts[0] = info.alias
    return tuple(parts)


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


@dataclass(frozen=True)
class Effects:
    """What a step sets: ``defs`` on every normal completion, ``poss`` on some (``poss``
    includes ``defs``), ``nested`` by its bodies (also when the step then fails)."""

    defs: Names
    poss: Names
    nested: Names


def _waits_for_all(step: StepDef, body: BodySpec) -> bool:
    wait = getattr(step.config, "wait", None)
    if wait == "all":
        return True
    return isinstance(wait, int) and not isinstance(wait, bool) and wait >= len(body.steps)


class VariableCheck:
    """Reports variables read before any step sets them, and paths outside output schemas."""

    def __init__(self, definition: WorkflowDefinition, hooks: Hooks, report: Reporter) -> None:
        self.definition = definition
        self.hooks = hooks
        self.report = report
        self._effects: dict[int, Effects] = {}
        self.producers: dict[str, list[tuple[StepDef, Mapping[str, Any] | None]]] = {}
        self.known: set[str] = set(ROOTS)
        self.scoped: dict[str, str] = {}  # a body's scope name -> where it is set

    def run(self, top: Frame) -> None:
        for frame in top.walk():
            for i, step in enumerate(frame.steps):
                step_type = self.hooks.of(step)
                schema = step_type.output_schema(step)
                for k, name in enumerate(step_type.outputs(step)):
                    usable = schema if k == 0 and isinstance(schema, Mapping) else None
                    self.producers.setdefault(name, []).append((step, usable))
                    self.known.add(name)
                for body, child in frame.children[i]:
                    self.known.update(body.scope)
                    self.scoped.update(dict.fromkeys(body.scope, child.where))
        self._frame(top, _EMPTY, _EMPTY, _EMPTY)

    # -- what steps set

    def effects(self, step: StepDef) -> Effects:
        cached = self._effects.get(id(step))
        if cached is not None:
            return cached
        step_type = self.hooks.of(step)
        outputs = frozenset(step_type.outputs(step))
        nested: set[str] = set()
        nested_defs: set[str] = set()
        for body in step_type.bodies(step):
            scope = frozenset(body.scope)
            writes: set[str] = set()
            for inner in body.steps:
                writes |= self.effects(inner).poss | self.effects(inner).nested
            nested |= (writes | scope) if body.exports else (writes - scope)
            if not body.sequential and _waits_for_all(step, body):
                for inner in body.steps:
                    if inner.on_error is None:  # a branch ended by its on_error sets nothing
                        nested_defs |= self.effects(inner).defs
        defs = (outputs | nested_defs) - _LAST_ERROR
        result = Effects(defs, defs | frozenset(nested - _LAST_ERROR), frozenset(nested))
        self._effects[id(step)] = result
        return result

    # -- the fixpoint

    def _solve(
        self, frame: Frame, start_defs: Names, start_poss: Names
    ) -> dict[int, tuple[Names, Names]]:
        rank = {node: r for r, node in enumerate(frame.order)}
        defs: dict[int, Names] = {0: start_defs}
        poss: dict[int, Names] = {0: start_poss}
        heap = [(0, 0)]
        queued = {0}
        while heap:
            _, i = heapq.heappop(heap)
            queued.discard(i)
            d, p = defs[i] - _LAST_ERROR, poss[i] - _LAST_ERROR
            effects = self.effects(frame.steps[i])
            for j, is_error in frame.edges[i]:
                if is_error:
                    out_d, out_p = d | _LAST_ERROR, p | effects.nested | _LAST_ERROR
                else:
                    out_d, out_p = d | effects.defs, p | effects.poss
                old = defs.get(j)
                new_d = out_d if old is None else old & out_d
                new_p = poss.get(j, _EMPTY) | out_p
                if old is None or new_d != old or new_p != poss[j]:
                    defs[j], poss[j] = new_d, new_p
                    if j not in queued:
                        queued.add(j)
                        heapq.heappush(heap, (rank[j], j))
        return {i: (defs[i], poss[i]) for i in defs}

    def _frame(self, frame: Frame, defs: Names, poss: Names, shadow: Names) -> None:
        if frame.kind == "branches":
            for i in frame.order:
                self._step(frame, i, defs, poss, shadow)
            return
        if not frame.steps:
            return
        states = self._solve(frame, defs, poss)
        for i in sorted(states):
            self._step(frame, i, *states[i], shadow)

    def _step(self, frame: Frame, i: int, defs: Names, poss: Names, shadow: Names) -> None:
        step = frame.steps[i]
        bodies = frame.children[i]
        # A step's own reads may see what its bodies set (a `while` condition after the first
        # iteration), but only possibly: the first evaluation comes before any iteration.
        around = self.effects(step).nested.union(*(body.scope for body, _ in bodies))
        self._reads(step, defs, poss | around, shadow)
        for body, child in bodies:
            scope = frozenset(body.scope)
            inner_poss = poss | scope
            if child.kind == "body":  # later iterations see what earlier ones set
                for inner in body.steps:
                    inner_poss |= self.effects(inner).poss | self.effects(inner).nested
            self._frame(child, defs | scope, inner_poss, shadow | scope)

    # -- reads

    def _reads(self, step: StepDef, defs: Names, poss: Names, shadow: Names) -> None:
        status: dict[str, Severity | None] = {}  # one message per variable and step
        for label, path in self.hooks.of(step).reads(step):
            root, _, rest = path.partition(".")
            where = self._locate(step, label, path)
            if root in ("now", "history"):
                if rest:
                    message = f"'${path}': '${root}' has no fields; use '${root}' on its own"
                    self.report.add(message, step, where)
                continue
            if root == "input":
                continue
            if root not in status:
                status[root] = self._availability(step, root, defs, poss, where)
            if status[root] != "error" and rest and root not in shadow:
                self._schema(step, root, path, rest.split("."), where)

    def _availability(
        self, step: StepDef, root: str, defs: Names, poss: Names, where: tuple[str | int, ...]
    ) -> Severity | None:
        if root in defs:
            return None
        if root in poss:
            message = (
                f"'${root}' may not be set on every path to this step (it reads as null there)"
            )
            self.report.add(message, step, where, severity="warning")
            return "warning"
        if root in self.definition.inputs:
            message = (
                f"'${root}' reads a variable, but '{root}' is a declared input; use '$input.{root}'"
            )
        elif root == LAST_ERROR:
            message = (
                f"'${LAST_ERROR}' is only set for the step an 'on_error' goes to, and this step "
                "is never reached that way"
            )
        elif root in self.scoped:
            message = (
                f"'${root}' is read but no step sets it before this one; it is only set "
                f"inside {self.scoped[root]}"
            )
        else:
            hint = did_you_mean(root, self.known - {root})
            message = f"'${root}' is read but no step sets it before this one{hint}"
        self.report.add(message, step, where)
        return "error"

    def _schema(
        self, step: StepDef, root: str, path: str, segments: list[str], where: tuple[str | int, ...]
    ) -> None:
        producers = self.producers.get(root, [])
        if not producers or any(schema is None for _, schema in producers):
            return
        misses = [
            (producer, _schema_miss(schema or {}, segments)) for producer, schema in producers
        ]
        if any(miss is None for _, miss in misses):
            return
        producer, miss = misses[0]
        assert miss is not None
        segment, available = miss
        message = (
            f"'${path}' — '{segment}' is not in the output schema of step '{producer.id}' "
            f"(available: {', '.join(available) or 'none'})"
        )
        self.report.add(message, step, where)

    def _locate(self, step: StepDef, label: str, path: str) -> tuple[str | int, ...]:
        """The field, narrowed to the string that holds ``$path`` when one does."""
        base = field_path(step, label)
        node: Any = self.definition.raw
        for part in (*step.source_path, *base):
            in_mapping = isinstance(node, Mapping) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if not (in_mapping or in_list):
                return base
            node = node[part]
        found = _find_reference(node, path)
        return base if found is None else (*base, *found)


def _find_reference(node: Any, path: str) -> tuple[str | int, ...] | None:
    if isinstance(node, str):
        return () if "$" in node and path in expr.references(node) else None
    items: Any = (
        node.items()
        if isinstance(node, Mapping)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        found = _find_reference(value, path)
        if found is not None:
            return (key, *found)
    return None


def _schema_miss(schema: Mapping[str, Any], segments: list[str]) -> tuple[str, list[str]] | None:
    """The first segment the schema does not allow, with the properties it does; ``None`` when
    the path fits or the schema does not say (no ``properties``, open ``additionalProperties``)."""
    node: Any = schema
    for segment in segments:
        if not isinstance(node, Mapping):
            return None
        properties = node.get("properties")
        closed = node.get("additionalProperties") is not True and not node.get("patternProperties")
        if isinstance(properties, Mapping) and closed:
            if segment not in properties:
                return segment, [str(name) for name in properties]
            node = properties[segment]
        elif segment.isdigit() and isinstance(node.get("items"), Mapping):
            node = node["items"]
        else:
            return None
    return None
