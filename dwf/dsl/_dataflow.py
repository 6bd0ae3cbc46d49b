"""Which variables are set before each step reads them, and whether paths fit output schemas.

:class:`VariableCheck` is a forward dataflow analysis over the step graphs that
:mod:`dwf.dsl.validator` builds (one :class:`~dwf.dsl.validator.Frame` per step list). For each
reachable step it computes the variables set on *every* path reaching it (intersection over
predecessors, iterated in reverse postorder until nothing changes: two rounds for loops with
one entry) and on *some* path (a union, computed in one pass over the strongly connected
components). Sets are bit sets in Python ints. The work is linear in the size of the workflow,
never one walk per path. Reading a variable set on every path is fine, on some path a warning
(it reads as null elsewhere), on none an error.

What a step sets (:class:`Effects`): its ``outputs()`` on its normal edges; on its ``on_error``
edge only ``_last_error`` (the failed step's own writes are discarded), which the handler sees
and which is cleared once the handler completes. A body's writes are possibly set after the step
(a loop may run zero times); the writes of parallel branches are definitely set when the step
waits for all of them. A body's ``scope`` names (``item``, ``index``) are visible inside it, and
after the step only when the body ``exports`` them. The roots ``input``, ``now`` and ``history``
are always valid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dwf import expr
from dwf.dsl.model import StepDef, WorkflowDefinition
from dwf.errors import Severity
from dwf.extensions import BodySpec, did_you_mean

if TYPE_CHECKING:
    from dwf.dsl.validator import Frame, Hooks, Reporter

__all__ = ["Effects", "VariableCheck", "field_path"]

#: References that are always valid: the run input, the clock and the execution history.
ROOTS = ("input", "now", "history")
LAST_ERROR = "_last_error"
_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

_Read = tuple[StepDef, str, str]  # the step, the field label and the path read


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


@dataclass(frozen=True)
class Effects:
    """What a step sets, as bit sets of variables: ``defs`` on every normal completion,
    ``poss`` on some (it includes ``defs``), ``nested`` by its bodies (also when it then fails)."""

    defs: int
    poss: int
    nested: int


def _waits_for_all(step: StepDef, body: BodySpec) -> bool:
    wait = getattr(step.config, "wait", None)
    if wait == "all":
        return True
    return isinstance(wait, int) and not isinstance(wait, bool) and wait >= len(body.steps)


def _components(frame: Frame) -> tuple[list[list[int]], dict[int, int]]:
    """The strongly connected components of the reachable steps in topological order (Tarjan,
    without recursion), and the component of each step."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    found: list[list[int]] = []
    work = [(0, 0)]
    while work:
        node, i = work.pop()
        if i == 0:
            index[node] = low[node] = len(index)
            stack.append(node)
            on_stack.add(node)
        successors = frame.edges[node]
        while i < len(successors):
            nxt = successors[i][0]
            i += 1
            if nxt not in index:
                work += [(node, i), (nxt, 0)]
                break
            if nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        else:
            if low[node] == index[node]:
                component: list[int] = []
                while not component or component[-1] != node:
                    component.append(stack.pop())
                    on_stack.discard(component[-1])
                found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    found.reverse()
    return found, {n: c for c, members in enumerate(found) for n in members}


class VariableCheck:
    """Reports variables read before any step sets them, and paths outside output schemas.

    Sets of variables are Python ints used as bit sets (one bit per name), so unions,
    intersections and comparisons cost a few machine words however many variables there are.
    """

    def __init__(self, definition: WorkflowDefinition, hooks: Hooks, report: Reporter) -> None:
        self.definition = definition
        self.hooks = hooks
        self.report = report
        self._bits: dict[str, int] = {}
        self._effects: dict[int, Effects] = {}
        self.producers: dict[str, list[tuple[StepDef, Mapping[str, Any] | None]]] = {}
        self.known: set[str] = set(ROOTS)
        self.scoped: dict[str, str] = {}  # a body's scope name -> where it is set
        self.last_error = self.bits([LAST_ERROR])

    def bits(self, names: Iterable[str]) -> int:
        found = 0
        for name in names:
            found |= 1 << self._bits.setdefault(name, len(self._bits))
        return found

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
        self._frame(top, 0, 0, frozenset())

    # -- what steps set

    def effects(self, step: StepDef) -> Effects:
        cached = self._effects.get(id(step))
        if cached is not None:
            return cached
        step_type = self.hooks.of(step)
        nested = nested_defs = 0
        for body in step_type.bodies(step):
            scope = self.bits(body.scope)
            writes = 0
            for inner in body.steps:
                writes |= self.effects(inner).poss | self.effects(inner).nested
            nested |= (writes | scope) if body.exports else (writes & ~scope)
            if not body.sequential and _waits_for_all(step, body):
                for inner in body.steps:
                    if inner.on_error is None:  # a branch ended by its on_error sets nothing
                        nested_defs |= self.effects(inner).defs
        keep = ~self.last_error
        defs = (self.bits(step_type.outputs(step)) | nested_defs) & keep
        result = Effects(defs, defs | (nested & keep), nested & keep)
        self._effects[id(step)] = result
        return result

    # -- the fixpoint

    def _solve(self, frame: Frame, start_defs: int, start_poss: int) -> dict[int, tuple[int, int]]:
        """(every path, some path) at the entry of each reachable step of a sequential frame.

        ``_last_error`` is set only at steps an ``on_error`` goes to (each step clears it), so it
        is decided from the kinds of incoming edges; the rest only grows along edges.
        """
        keep = ~self.last_error
        effects = {n: self.effects(frame.steps[n]) for n in frame.order}
        preds: dict[int, list[tuple[int, bool]]] = {n: [] for n in frame.order}
        for m in frame.order:
            for n, is_error in frame.edges[m]:
                preds[n].append((m, is_error))

        # Every path: intersect over predecessors, in rounds in reverse postorder. -1 is the
        # set of all variables (nothing known yet); a round without change is the fixpoint
        # (two rounds for loops with one entry).
        defs = dict.fromkeys(frame.order, -1)
        changed = True
        while changed:
            changed = False
            for n in frame.order:
                d = start_defs & keep if n == 0 else -1
                for m, is_error in preds[n]:
                    d &= defs[m] | (0 if is_error else effects[m].defs)
                if d != defs[n]:
                    defs[n], changed = d, True

        # Some path: a union, the same for all steps of a cycle; one pass over the components.
        components, component_of = _components(frame)
        incoming = [0] * len(components)
        incoming[0] = start_poss & keep
        poss: dict[int, int] = {}
        for c, members in enumerate(components):
            p = incoming[c]
            for m in members:
                for n, is_error in frame.edges[m]:
                    if component_of[n] == c:
                        p |= effects[m].nested if is_error else effects[m].poss
            for m in members:
                poss[m] = p
                for n, is_error in frame.edges[m]:
                    if component_of[n] != c:
                        incoming[component_of[n]] |= p | (
                            effects[m].nested if is_error else effects[m].poss
                        )

        states = {}
        for n in frame.order:
            kinds = [is_error for _, is_error in preds[n]]
            entry_defs, entry_poss = (start_defs, start_poss) if n == 0 else (-1, 0)
            every = all(kinds) and entry_defs & self.last_error
            some = any(kinds) or entry_poss & self.last_error
            states[n] = (
                defs[n] | (self.last_error if every else 0),
                poss[n] | defs[n] | (self.last_error if some else 0),
            )
        return states

    def _frame(self, frame: Frame, defs: int, poss: int, shadow: frozenset[str]) -> None:
        if frame.kind == "branches":
            for i in frame.order:
                self._step(frame, i, defs, poss, shadow)
            return
        if not frame.steps:
            return
        states = self._solve(frame, defs, poss)
        for i in sorted(states):
            self._step(frame, i, *states[i], shadow)

    def _step(self, frame: Frame, i: int, defs: int, poss: int, shadow: frozenset[str]) -> None:
        step = frame.steps[i]
        bodies = frame.children[i]
        # A step's own reads may see what its bodies set (a `while` condition after the first
        # iteration), but only possibly: the first evaluation comes before any iteration.
        around = self.effects(step).nested | self.bits(n for b, _ in bodies for n in b.scope)
        self._reads(step, defs, poss | around, shadow)
        for body, child in bodies:
            scope = self.bits(body.scope)
            inner_poss = poss | scope
            if child.kind == "body":  # later iterations see what earlier ones set
                for inner in body.steps:
                    inner_poss |= self.effects(inner).poss | self.effects(inner).nested
            self._frame(child, defs | scope, inner_poss, shadow | set(body.scope))

    # -- reads

    def _reads(self, step: StepDef, defs: int, poss: int, shadow: frozenset[str]) -> None:
        status: dict[str, Severity | None] = {}  # one message per variable and step
        for label, path in self.hooks.of(step).reads(step):
            root, _, rest = path.partition(".")
            where = (step, label, path)
            if root in ("now", "history"):
                if rest:
                    self._say(
                        where, f"'${path}': '${root}' has no fields; use '${root}' on its own"
                    )
                continue
            if root == "input":
                continue
            if root not in status:
                status[root] = self._availability(where, root, defs, poss)
            if status[root] != "error" and rest and root not in shadow:
                self._schema(where, root, rest.split("."))

    def _availability(self, where: _Read, root: str, defs: int, poss: int) -> Severity | None:
        bit = self.bits([root])
        if defs & bit:
            return None
        if poss & bit:
            message = (
                f"'${root}' may not be set on every path to this step (it reads as null there)"
            )
            self._say(where, message, "warning")
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
        self._say(where, message)
        return "error"

    def _schema(self, where: _Read, root: str, segments: list[str]) -> None:
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
            f"'${where[2]}' — '{segment}' is not in the output schema of step '{producer.id}' "
            f"(available: {', '.join(available) or 'none'})"
        )
        self._say(where, message)

    def _say(self, where: _Read, message: str, severity: Severity = "error") -> None:
        """Report at the field, narrowed to the string that holds the reference when one does."""
        step, label, path = where
        base = field_path(step, label)
        self.report.add(message, step, self._locate(step, base, path), severity=severity)

    def _locate(
        self, step: StepDef, base: tuple[str | int, ...], path: str
    ) -> tuple[str | int, ...]:
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
