"""The operations of the ``transform`` step: pure functions over JSON-like data.

A transform expression is a mapping of operation to argument, applied in mapping order, each to
the previous result::

    expression: {compact: null, uniq: null, sort: price, first: 3}

Unlike the original, nothing is silently passed through: an unknown operation, a bad argument or
data of the wrong shape raises :class:`~dwf.errors.ExpressionError` saying which operation, what it
expected and what it got. :func:`check_expression` reports the argument problems statically.

Paths (``map``, ``pluck``, ``select``, ``sort``, ``sum``) are bare dotted paths such as
``user.email`` or ``items.0.sku``: they follow dict keys, and digit segments index lists. A stored
``false``, ``0`` or ``""`` is a value; a missing key reads as ``None``. No methods are ever called.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from dwf.errors import ExpressionError

__all__ = ["OPERATIONS", "apply_transform", "check_expression"]

# fmt: off
OPERATIONS: tuple[str, ...] = (
    "map", "select", "reject", "pluck", "first", "last", "flatten", "compact", "uniq",
    "reverse", "sort", "count", "sum", "keys", "values", "pick", "omit", "merge",
)
# fmt: on


class _Misfit(Exception):
    """Raised by an operation; carries the tail of the message after ``"transform 'op' "``."""


def apply_transform(data: Any, expression: Mapping[str, Any], *, step_id: str | None = None) -> Any:
    """Apply each operation of ``expression`` in order, each to the previous result.

    Args:
        data: JSON-like input (dicts, lists, strings, numbers, booleans, ``None``); never mutated.
        expression: Mapping of operation name to argument, e.g. ``{"compact": None, "first": 2}``.
        step_id: The transform step's id, named in error messages.

    Returns:
        The final result, sharing no mutable objects with ``data``.

    Raises:
        ExpressionError: The expression is not a non-empty mapping, names an unknown operation or
            has a bad argument (all checked before anything runs), or an operation gets data of a
            shape it cannot handle.
    """
    where = f"step '{step_id}': " if step_id else ""
    shape = _shape_problem(expression)
    if shape is not None:
        raise ExpressionError(f"{where}transform {shape}", step_id=step_id)
    for op, arg in expression.items():
        if op not in _OPS:
            raise ExpressionError(
                f"{where}unknown transform operation {str(op)!r}{_suggestion(op)}; "
                f"valid operations: {', '.join(OPERATIONS)}",
                step_id=step_id,
                operation=str(op),
            )
        tail = _OPS[op][0](arg)
        if tail is not None:
            raise ExpressionError(f"{where}transform '{op}' {tail}", step_id=step_id, operation=op)
    result = data
    for op, arg in expression.items():
        try:
            result = _OPS[op][1](result, arg)
        except _Misfit as exc:
            raise ExpressionError(
                f"{where}transform '{op}' {exc}", step_id=step_id, operation=op
            ) from None
    return copy.deepcopy(result)


def check_expression(expression: Mapping[str, Any]) -> list[str]:
    """Check an expression without data, as the validator does.

    Args:
        expression: The step's ``expression`` as written.

    Returns:
        One message per problem, e.g. ``"unknown operation 'mapp' (did you mean 'map'?)"``;
        an empty list when the expression is fine.
    """
    shape = _shape_problem(expression)
    if shape is not None:
        return [shape]
    problems: list[str] = []
    for op, arg in expression.items():
        if op not in _OPS:
            hint = _suggestion(op) or f" (valid: {', '.join(OPERATIONS)})"
            problems.append(f"unknown operation {str(op)!r}{hint}")
            continue
        tail = _OPS[op][0](arg)
        if tail is not None:
            problems.append(f"'{op}' {tail}")
    return problems


def _shape_problem(expression: object) -> str | None:
    if not isinstance(expression, Mapping):
        return f"expression must be a mapping of operation to argument, got {_kind(expression)}"
    if not expression:
        return "expression has no operations"
    return None


def _suggestion(op: object) -> str:
    close = difflib.get_close_matches(str(op), OPERATIONS, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "dict"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _no_arg(arg: object) -> str | None:
    # YAML users write `compact:` (null) or `compact: true`; anything else is a mistake.
    return None if arg is None or arg is True else f"takes no argument, got {_show(arg)}"


def _path(arg: object) -> str | None:
    if not isinstance(arg, str):
        return f"takes a path such as 'user.email', got {_show(arg)}"
    if arg.startswith("$"):
        return f"takes a bare path: write {arg.lstrip('$')!r}, not {arg!r}"
    if "" in arg.split("."):
        return f"path {arg!r} has an empty segment"
    return None


def _optional_path(arg: object) -> str | None:
    return None if arg is None else _path(arg)


def _count_arg(arg: object) -> str | None:
    if arg is None or (isinstance(arg, int) and not isinstance(arg, bool) and arg >= 0):
        return None
    return f"takes a non-negative integer, got {_show(arg)}"


def _depth_arg(arg: object) -> str | None:
    if arg is True or _count_arg(arg) is None:
        return None
    return f"takes a non-negative integer depth or true (fully), got {_show(arg)}"


def _match_arg(arg: object) -> str | None:
    if not isinstance(arg, Mapping) or not arg:
        return f"takes a non-empty mapping of path to value, got {_show(arg)}"
    return next((tail for tail in map(_path, arg) if tail is not None), None)


def _names_arg(arg: object) -> str | None:
    names = [arg] if isinstance(arg, str) else arg
    if isinstance(names, list | tuple) and all(isinstance(name, str) for name in names):
        return None
    return f"takes a key name or a list of key names, got {_show(arg)}"


def _mapping_arg(arg: object) -> str | None:
    return None if isinstance(arg, Mapping) else f"takes a mapping, got {_show(arg)}"


def _list(data: object) -> list[Any]:
    if isinstance(data, list | tuple):
        return list(data)
    raise _Misfit(f"expects a list, got {_kind(data)}")


def _dict(data: object) -> Mapping[Any, Any]:
    if isinstance(data, Mapping):
        return data
    raise _Misfit(f"expects a dict, got {_kind(data)}")


def _dig(value: Any, path: str) -> Any:
    for segment in path.split("."):
        if isinstance(value, Mapping):
            if segment not in value:
                return None
            value = value[segment]
        elif isinstance(value, list | tuple) and segment.isascii() and segment.isdigit():
            index = int(segment)
            if index >= len(value):
                return None
            value = value[index]
        else:
            return None
    return value


def _canon(value: Any) -> Hashable:
    """A hashable key for equality where ``True != 1`` but ``1 == 1.0``; dicts and lists work."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, Mapping):
        return ("dict", frozenset((_canon(k), _canon(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("list", tuple(_canon(v) for v in value))
    if value is None or isinstance(value, str):
        return ("scalar", value)
    try:
        hash(value)
    except TypeError:
        return ("repr", type(value).__name__, repr(value))
    return ("other", value)


def _sort_kind(value: object) -> str:
    kind = _kind(value)
    return "number" if kind in ("int", "float") else kind


def _map(data: Any, arg: str) -> list[Any]:
    return [_dig(el, arg) for el in _list(data)]


def _matches(el: Any, arg: Mapping[str, Any]) -> bool:
    return all(_canon(_dig(el, path)) == _canon(want) for path, want in arg.items())


def _select(data: Any, arg: Mapping[str, Any], keep: bool = True) -> list[Any]:
    return [el for el in _list(data) if _matches(el, arg) is keep]


def _first(data: Any, arg: int | None, *, last: bool = False) -> Any:
    items = _list(data)
    if arg is None:
        return (items[-1] if last else items[0]) if items else None
    return items[max(len(items) - arg, 0) :] if last else items[:arg]


def _flatten_to(items: list[Any], depth: int | None) -> list[Any]:
    out: list[Any] = []
    for el in items:
        if isinstance(el, list | tuple) and (depth is None or depth > 0):
            out.extend(_flatten_to(list(el), None if depth is None else depth - 1))
        else:
            out.append(el)
    return out


def _flatten(data: Any, arg: int | bool | None) -> list[Any]:
    depth = None if arg is True else (1 if arg is None else int(arg))
    return _flatten_to(_list(data), depth)


def _uniq(data: Any, _arg: None) -> list[Any]:
    firsts: dict[Hashable, Any] = {}
    for el in _list(data):
        firsts.setdefault(_canon(el), el)
    return list(firsts.values())


def _reverse(data: Any, _arg: None) -> Any:
    if isinstance(data, str):
        return data[::-1]
    if isinstance(data, list | tuple):
        return list(reversed(data))
    raise _Misfit(f"expects a list or string, got {_kind(data)}")


def _sort(data: Any, arg: str | None) -> list[Any]:
    keyed = [(el if arg is None else _dig(el, arg), el) for el in _list(data)]
    present = [(key, el) for key, el in keyed if key is not None]
    kinds = sorted({_sort_kind(key) for key, _ in present})
    at = "" if arg is None else f" at '{arg}'"
    if len(kinds) > 1:
        raise _Misfit(f"cannot order {' and '.join(kinds)} values together{at}")
    if kinds and kinds[0] not in ("number", "string", "bool"):
        raise _Misfit(f"can only order numbers, strings or booleans{at}, got {kinds[0]}")
    present.sort(key=lambda pair: pair[0])
    # Nones sort last, keeping their original order.
    return [el for _, el in present] + [el for key, el in keyed if key is None]


def _count(data: Any, _arg: None) -> int:
    if data is None:
        return 0
    if isinstance(data, list | tuple | Mapping | str):
        return len(data)
    raise _Misfit(f"expects a list, dict or string, got {_kind(data)}")


def _sum(data: Any, arg: str | None) -> int | float:
    total: int | float = 0
    at = "" if arg is None else f" at '{arg}'"
    for index, el in enumerate(_list(data)):
        value = el if arg is None else _dig(el, arg)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Misfit(f"expects numbers{at}, got {_kind(value)} at index {index}")
        try:
            total += value
        except OverflowError:  # a huge int meeting a float
            raise _Misfit(f"cannot add {_show(value)} at index {index} to a float") from None
    return total


def _pick(data: Any, arg: str | list[str]) -> dict[Any, Any]:
    source = _dict(data)
    names = [arg] if isinstance(arg, str) else arg
    return {name: source[name] for name in names if name in source}


def _omit(data: Any, arg: str | list[str]) -> dict[Any, Any]:
    names = {arg} if isinstance(arg, str) else set(arg)
    return {k: v for k, v in _dict(data).items() if k not in names}


_Check = Callable[[Any], str | None]
_Apply = Callable[[Any, Any], Any]

_OPS: dict[str, tuple[_Check, _Apply]] = {
    "map": (_path, _map),
    "select": (_match_arg, _select),
    "reject": (_match_arg, lambda data, arg: _select(data, arg, keep=False)),
    "pluck": (_path, _map),
    "first": (_count_arg, _first),
    "last": (_count_arg, lambda data, arg: _first(data, arg, last=True)),
    "flatten": (_depth_arg, _flatten),
    "compact": (_no_arg, lambda data, _arg: [el for el in _list(data) if el is not None]),
    "uniq": (_no_arg, _uniq),
    "reverse": (_no_arg, _reverse),
    "sort": (_optional_path, _sort),
    "count": (_no_arg, _count),
    "sum": (_optional_path, _sum),
    "keys": (_no_arg, lambda data, _arg: list(_dict(data).keys())),
    "values": (_no_arg, lambda data, _arg: list(_dict(data).values())),
    "pick": (_names_arg, _pick),
    "omit": (_names_arg, _omit),
    "merge": (_mapping_arg, lambda data, arg: {**_dict(data), **arg}),
}
