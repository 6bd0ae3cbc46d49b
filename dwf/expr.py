"""``$reference`` resolution and conditions: pure functions, no I/O.

References
    ``$`` followed by a path: a first segment ``[A-Za-z_][A-Za-z0-9_]*``, then ``.segment`` parts
    where a segment is an identifier or all digits (``$input.items.0.name``). A trailing dot is
    not part of the path (``"Total: $total."`` keeps the ``.``), a digit segment must not run
    into letters (``$items.0x`` is ``$items`` then the text ``.0x``), and ``"$price.50"`` reads
    item 50 of ``price``. A ``$`` before a digit or any other character is literal (``"costs
    $5"``); ``$$`` is an escaped ``$`` (``"$$input"`` is the text ``$input``, not a reference).

Whole-string and embedded references
    A string that is exactly one reference (no surrounding whitespace) resolves to the value
    itself with its native type (dict, list, number, bool, None), shared and not copied, so
    callers must not mutate it. Otherwise each reference in the text is replaced by
    :func:`render` of its value. Dicts are resolved value by value (keys untouched), lists and
    tuples item by item, other values are returned as they are; the argument is never mutated.

Roots
    ``input`` is the run input, ``now`` the current time as an ISO-8601 string in UTC (a naive
    clock reading is taken to be UTC), ``history`` the execution history (loaded only when
    referenced); any other root is a workflow variable (missing is None). A path below ``now``
    or ``history`` is an :class:`~dwf.errors.ExpressionError`.

Path walking
    A dict is read by key (a stored ``false``, ``0`` or ``""`` is a value, never a miss; a digit
    segment falls back to an integer key), a list only by an all-digit segment (out of range is
    None); anything else gives None. Attributes and methods of values are never used, so
    ``$name.upper`` is None. Missing anything is None, never an error.

Rendering
    None is ``""``, booleans ``true``/``false``, numbers as Python prints them (``2.0``), dates
    and times ISO 8601, dicts and lists JSON (``{"a": [1, true]}``), other values ``str()``.

Truthiness
    None, False, 0, 0.0, ``""`` and empty lists, tuples and dicts are falsy; all else is truthy.

Conditions
    ``evaluate_condition(field, op, value, ctx)`` compares ``lookup(field)`` (a leading ``$`` is
    allowed) with ``resolve(value)``; ``exists``, ``empty``, ``truthy`` and ``falsy`` ignore
    ``value``. Equality is strict about types: a bool only equals a bool (``True != 1``), ints
    and floats compare numerically (``1 == 1.0``), ``"1" != 1``, and lists and dicts compare
    item by item with the same rules. ``gt``/``gte``/``lt``/``lte`` take numbers and strings
    spelling a finite decimal number (``" 12.5 "``, ``"1e3"``); anything else raises.
    ``in``/``not_in`` take a list (membership), None (empty), a dict (its keys) or a scalar (a
    one-item list). ``contains`` is a substring test on strings (a None expected value renders
    as ``""`` and is always contained), membership on lists, a key test on dicts, False on None
    and a substring test of rendered forms otherwise. ``starts_with``/``ends_with`` compare
    rendered forms and ``matches`` searches the rendered actual value with the rendered expected
    value as a pattern (the ``regex`` module, one-second budget); all three are False on None.
    Unknown operators, invalid patterns and runaway patterns raise; nothing is swallowed.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any

import regex  # type: ignore[import-untyped, unused-ignore]

from dwf.errors import ExpressionError

__all__ = [
    "OPERATORS",
    "ResolveContext",
    "evaluate_condition",
    "is_truthy",
    "lookup",
    "references",
    "render",
    "resolve",
    "search_regex",
    "type_name",
]

_ORDERING = ("gt", "gte", "lt", "lte")
_TEXT = ("contains", "starts_with", "ends_with", "matches")
_UNARY = ("exists", "empty", "truthy", "falsy")  # these ignore the condition's value
OPERATORS: tuple[str, ...] = ("eq", "neq", *_ORDERING, *_TEXT, "in", "not_in", *_UNARY)

_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?![A-Za-z0-9_])))*"
_WHOLE_REF = re.compile(r"\$(" + _PATH + r")")
_TOKEN = re.compile(r"\$\$|\$(" + _PATH + r")")
_VALID_PATH = re.compile(_PATH)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(\.[0-9]*)?|(\.)[0-9]+)([eE][+-]?[0-9]+)?")
_REGEX_TIMEOUT_SECONDS = 1.0
_PREVIEW_CHARS = 60


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _no_history() -> list[Any]:
    return []


@dataclass(frozen=True)
class ResolveContext:
    """What references can read.

    Attributes:
        variables: The workflow's variables (``$name``).
        input: The run input (``$input``, ``$input.x``).
        now: The clock behind ``$now``; inject a fixed one in tests.
        history: Loads the execution history behind ``$history``; called only when referenced.
    """

    variables: Mapping[str, Any]
    input: Mapping[str, Any]
    now: Callable[[], datetime] = _utc_now
    history: Callable[[], list[Any]] = _no_history


def resolve(value: Any, ctx: ResolveContext) -> Any:
    """Resolve every ``$reference`` in ``value``.

    Args:
        value: A string, dict, list or any other value; dicts and lists are walked recursively.
        ctx: The variables, input, clock and history that references read.

    Returns:
        A new value: a whole-string reference becomes the referenced value with its native type,
        embedded references are replaced by their rendered text, ``$$`` becomes ``$``.

    Raises:
        ExpressionError: A reference reads a path below ``$now`` or ``$history``, or a value
            cannot be rendered as text.
    """
    if isinstance(value, str):
        if "$" not in value:
            return value
        whole = _WHOLE_REF.fullmatch(value)
        if whole is not None:
            return _lookup(whole.group(1), ctx)
        return _TOKEN.sub(lambda m: _replace(m, ctx), value)
    if isinstance(value, Mapping):
        return {key: resolve(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, ctx) for item in value]
    if isinstance(value, tuple):
        return tuple(resolve(item, ctx) for item in value)
    return value


def _replace(match: re.Match[str], ctx: ResolveContext) -> str:
    path = match.group(1)
    if path is None:
        return "$"
    return render(_lookup(path, ctx))


def lookup(path: str, ctx: ResolveContext) -> Any:
    """Read the value at a reference path.

    Args:
        path: A reference path without the ``$``, e.g. ``"input.items.0.name"``.
        ctx: The variables, input, clock and history to read from.

    Returns:
        The value, or None when any part of the path is missing.

    Raises:
        ExpressionError: ``path`` is not a valid reference path, or continues below ``now`` or
            ``history``.
    """
    if _VALID_PATH.fullmatch(path) is None:
        raise ExpressionError(
            f"invalid reference '${path}': a reference is a name followed by '.name' or '.0' "
            "parts, e.g. '$input.items.0.name'",
            reference=f"${path}",
        )
    return _lookup(path, ctx)


def _lookup(path: str, ctx: ResolveContext) -> Any:
    root, _, rest = path.partition(".")
    if root in ("now", "history"):
        if rest:
            raise ExpressionError(
                f"reference '${path}' reads '{rest}' below '${root}', which has no fields; "
                f"use '${root}' on its own",
                reference=f"${path}",
            )
        return _iso_utc(ctx.now()) if root == "now" else ctx.history()
    current: Any = ctx.input if root == "input" else ctx.variables.get(root)
    if not rest:
        return current
    for segment in rest.split("."):
        current = _step(current, segment)
        if current is None:
            return None
    return current


def _step(current: Any, segment: str) -> Any:
    # Only dict keys and list indexes are followed: never attributes or methods of a value.
    if isinstance(current, Mapping):
        if segment in current:
            return current[segment]
        if segment.isdigit():
            return current.get(int(segment))
        return None
    if isinstance(current, list | tuple) and segment.isdigit():
        index = int(segment)
        return current[index] if index < len(current) else None
    return None


def _iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC).isoformat()
    return moment.astimezone(UTC).isoformat()


def render(value: Any) -> str:
    """The text a value becomes when it is embedded in a string.

    Args:
        value: Any value.

    Returns:
        ``""`` for None, ``true``/``false`` for booleans, ``str()`` of numbers (``2.0``), ISO 8601
        for dates and times, JSON for dicts and lists, the string itself for strings.

    Raises:
        ExpressionError: A dict or list cannot be written as JSON (e.g. it contains itself).
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)  # not repr(): an IntEnum would print its member name
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple):
        try:
            return json.dumps(value, ensure_ascii=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise ExpressionError(
                f"cannot render a {type(value).__name__} as text: {exc}",
            ) from exc
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def references(value: Any) -> list[str]:
    """Every reference path in ``value``, without the ``$``.

    Args:
        value: A string, dict or list (walked recursively; dict keys are not searched).

    Returns:
        The paths in order of first appearance, each once, e.g. ``["input.amount", "total"]``.
        Escaped ``$$`` is not a reference.
    """
    found: dict[str, None] = {}
    _collect(value, found)
    return list(found)


def _collect(value: Any, found: dict[str, None]) -> None:
    if isinstance(value, str):
        if "$" in value:
            for match in _TOKEN.finditer(value):
                if match.group(1) is not None:
                    found.setdefault(match.group(1))
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, found)


def is_truthy(value: Any) -> bool:
    """Whether a value counts as true.

    Args:
        value: Any value.

    Returns:
        False for None, False, 0, 0.0, ``""`` and empty lists, tuples and dicts; True otherwise.
    """
    if value is None or isinstance(value, bool):
        return value is True
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def evaluate_condition(field: str, op: str, value: Any, ctx: ResolveContext) -> bool:
    """Evaluate one ``{field, op, value}`` condition.

    Args:
        field: The reference path of the actual value (``"input.amount"``; a leading ``$`` is
            allowed).
        op: One of :data:`OPERATORS`.
        value: The expected value; may be or contain references. Ignored by ``exists``,
            ``empty``, ``truthy`` and ``falsy``.
        ctx: The variables, input, clock and history that references read.

    Returns:
        Whether the condition holds.

    Raises:
        ExpressionError: The operator is unknown, ``field`` is not a reference path, an ordering
            operator meets a value that is not a number, or a regular expression is invalid or
            too slow.
    """
    if op not in OPERATORS:
        close = difflib.get_close_matches(op, OPERATORS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ExpressionError(
            f"unknown operator '{op}' in condition on '{field}'. "
            f"Valid operators: {', '.join(OPERATORS)}.{hint}",
            field=field,
            op=op,
        )
    actual = lookup(field.removeprefix("$"), ctx)
    if op in _UNARY:
        if op == "exists":
            return actual is not None
        if op == "empty":
            return actual is None or (
                isinstance(actual, str | list | tuple | Mapping) and len(actual) == 0
            )
        return is_truthy(actual) == (op == "truthy")
    expected = resolve(value, ctx)
    if op == "eq":
        return _equal(actual, expected)
    if op == "neq":
        return not _equal(actual, expected)
    if op in _ORDERING:
        return _order(field, op, actual, expected)
    if op in ("in", "not_in"):
        return _member(actual, expected) == (op == "in")
    if actual is None:
        return False
    if op == "contains":
        if isinstance(actual, list | tuple):
            return any(_equal(item, expected) for item in actual)
        if isinstance(actual, Mapping):
            return any(_equal(key, expected) for key in actual)
        return render(expected) in render(actual)
    if op == "starts_with":
        return render(actual).startswith(render(expected))
    if op == "ends_with":
        return render(actual).endswith(render(expected))
    return search_regex(render(expected), render(actual))  # "matches", the last operator


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if _is_number(left) or _is_number(right):
        return _is_number(left) and _is_number(right) and left == right
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    return bool(left == right)


def _member(actual: Any, expected: Any) -> bool:
    if expected is None:
        return False
    if isinstance(expected, list | tuple | Mapping):
        return any(_equal(actual, item) for item in expected)
    return _equal(actual, expected)


def _as_number(value: Any) -> int | float | None:
    if _is_number(value):
        number: int | float = value
        return number
    if isinstance(value, str):
        text = value.strip()
        match = _NUMBER.fullmatch(text)
        if match is None:
            return None
        if not any(match.groups()) and len(text) <= 4000:  # int() refuses > 4300 digits
            return int(text)
        parsed = float(text)
        return parsed if math.isfinite(parsed) else None
    return None


def _order(field: str, op: str, actual: Any, expected: Any) -> bool:
    left, right = _as_number(actual), _as_number(expected)
    if left is None or right is None:
        raise ExpressionError(
            f"cannot compare {_describe(actual)} with {_describe(expected)} using '{op}' in "
            f"condition on '{field}'; '{op}' needs two numbers or numeric strings",
            field=field,
            op=op,
        )
    if op == "gt":
        return left > right
    if op == "gte":
        return left >= right
    if op == "lt":
        return left < right
    return left <= right


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kinds = [(str, "string"), (bool, "boolean"), (int | float, "number"), (Mapping, "object")]
    kind = next((k for t, k in kinds if isinstance(value, t)), type(value).__name__)
    try:
        text = repr(value) if isinstance(value, str) else render(value)
    except ExpressionError:
        text = f"<{type(value).__name__}>"
    if len(text) > _PREVIEW_CHARS:
        text = text[: _PREVIEW_CHARS - 3] + "..."
    return f"{text} ({kind})"


@lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    try:
        return regex.compile(pattern)
    except (regex.error, RecursionError, OverflowError, ValueError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ExpressionError(
            f"invalid regular expression '{pattern}': {reason}", pattern=pattern
        ) from exc


def search_regex(pattern: str, text: str) -> bool:
    """Search ``text`` anywhere for ``pattern``, guarded against catastrophic backtracking.

    Args:
        pattern: A regular expression in Python syntax (compiled patterns are cached).
        text: The text to search.

    Returns:
        Whether the pattern matches somewhere in the text.

    Raises:
        ExpressionError: The pattern is invalid, or the search ran past its time budget.
    """
    compiled = _compile(pattern)
    try:
        return compiled.search(text, timeout=_REGEX_TIMEOUT_SECONDS) is not None
    except TimeoutError as exc:
        raise ExpressionError(
            f"regular expression '{pattern}' took longer than {_REGEX_TIMEOUT_SECONDS:g}s "
            "(catastrophic backtracking); simplify it, e.g. avoid nested repeats like '(a+)+'",
            pattern=pattern,
        ) from exc


def type_name(value: Any) -> str:
    """The JSON-ish name of a value's type, for error messages: ``null``, ``boolean``,
    ``integer``, ``number``, ``string``, ``list``, ``object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
