"""Checking, copying and encoding the JSON values that stores keep.

Every backend accepts exactly the same values: dict (with str keys), list, str, int, float
(finite), bool and None. Tuples become lists and subclasses of the basic types (a ``StrEnum``
member, an ``OrderedDict``) become the basic type, as ``json.dumps`` would do. Anything else is a
:class:`dwf.errors.StoreError` that names the key and the path inside the value, raised before
anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dwf.errors import StoreError

__all__ = [
    "clone",
    "copy_map",
    "copy_value",
    "decode",
    "encode",
    "encode_known",
    "encode_map",
    "encode_nullable",
    "quick_encode",
    "require_name",
    "require_names",
]

_ALLOWED = "dict (with str keys), list, str, int, float (finite), bool and None"


class _NotJSON(Exception):
    """Raised by :func:`_copy` on the first value that is not JSON; located afterwards."""


def _copy(value: Any) -> Any:
    # Exact-type checks first: this runs on every stored value of the in-memory engine.
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if cls is dict:
        out = {}
        for key, item in value.items():
            if key.__class__ is not str:
                raise _NotJSON
            out[key] = _copy(item)
        return out
    if cls is list or cls is tuple:
        return [_copy(item) for item in value]
    if cls is float:
        if value - value != 0.0:  # NaN or infinity
            raise _NotJSON
        return value
    return _copy_subclass(value)


def _copy_subclass(value: Any) -> Any:
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return _copy(float.__float__(value))
    if isinstance(value, dict):
        return _copy(dict(value))
    if isinstance(value, list | tuple):
        return [_copy(item) for item in value]
    raise _NotJSON


def _locate(value: Any, path: str) -> tuple[str, str] | None:
    """Where the first non-JSON part of ``value`` is, and what it is."""
    if value is None or isinstance(value, str | int):
        return None
    if isinstance(value, float):
        return None if value - value == 0.0 else (path, f"the float {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return path, f"the non-string key {key!r}"
            found = _locate(item, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _locate(item, f"{path}[{index}]")
            if found:
                return found
        return None
    return path, f"a {type(value).__name__}"


def _not_json(value: Any, what: str, key: str | None) -> StoreError:
    found = _locate(value, key or "value")
    where, detail = found if found else (key or "value", "a value nested too deeply")
    return StoreError(
        f"{what} is not JSON-compatible: {detail} at {where}. dwf stores only {_ALLOWED}; "
        "convert the value before storing it (for example a datetime to an ISO string).",
        key=key,
        path=where,
    )


def copy_value(value: Any, what: str, key: str | None = None) -> Any:
    """Check that ``value`` is JSON-compatible and return a deep copy made of basic types.

    Args:
        value: The value to store.
        what: How an error message names the value, e.g. ``"variable 'order'"``.
        key: The variable, state key or field name, kept on the error as ``key``.

    Raises:
        StoreError: The value, or something inside it, is not JSON-compatible.
    """
    try:
        return _copy(value)
    except (_NotJSON, RecursionError):
        raise _not_json(value, what, key) from None


def clone(value: Any) -> Any:
    """A deep copy of a value that :func:`copy_value` already produced (no checks)."""
    cls = value.__class__
    if cls is dict:
        return {key: clone(item) for key, item in value.items()}
    if cls is list:
        return [clone(item) for item in value]
    return value


def encode(value: Any, what: str, key: str | None = None) -> str:
    """Compact JSON text for ``value`` (checked like :func:`copy_value`).

    Raises:
        StoreError: The value is not JSON-compatible.
    """
    text = quick_encode(value)
    return text if text is not None else _encode_checked(value, what, key)


def quick_encode(value: Any) -> str | None:
    """What :func:`encode` returns for ``value``, or ``None`` when it cannot tell without the
    names an error message needs (the value is not JSON, or its text needs escaping to ASCII):
    :func:`encode` then decides. A checkpoint encodes a few values per step, most of them small,
    so this path formats no message and copies no string."""
    cls = value.__class__
    try:
        if cls is str:
            text = _encode_str(value)
        elif cls is int:
            text = int.__repr__(value)
        elif value is None:
            return "null"
        elif cls is bool:
            return "true" if value else "false"
        else:
            text = _to_json(_copy(value))
    except (_NotJSON, ValueError, RecursionError):
        return None
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None  # lone surrogates: encode() escapes them
    return text


def _encode_checked(value: Any, what: str, key: str | None) -> str:
    """:func:`encode`, the slow way: with an error that names the value."""
    plain = copy_value(value, what, key)
    try:
        text = _to_json(plain)
    except (ValueError, RecursionError) as exc:  # e.g. an int beyond the digit limit
        raise StoreError(f"{what} cannot be stored as JSON: {exc}", key=key) from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escape them so they round-trip
            text = _to_ascii_json(plain)
    return text


_encode_str = json.encoder.encode_basestring
# Made once: json.dumps() with options builds a new encoder on every call.
_to_ascii_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


def _make_encode_json() -> Callable[[Any], str]:
    """Compact JSON text of a value made by copy_value. JSONEncoder.encode() sets up a new C
    encoder on every call; this one is set up once. Without circular-reference checks: copy_value
    made a tree."""
    make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    encoder = make(
        None, _refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def encode_json(plain: Any) -> str:
        return "".join(encoder(plain, 0))

    return encode_json


_encode_json = _make_encode_json()
_SCALARS: dict[type, Callable[[Any], str]] = {
    int: int.__repr__,  # as json does; raises ValueError past the digit limit, as json does
    float: float.__repr__,  # finite: copy_value refused the others
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
}


def _to_json(plain: Any) -> str:
    """JSON text of a value made by copy_value; scalars skip the encoder's setup."""
    scalar = _SCALARS.get(plain.__class__)
    return scalar(plain) if scalar is not None else _encode_json(plain)


def encode_nullable(value: Any, what: str, key: str | None = None) -> str | None:
    """Like :func:`encode`, but ``None`` stays ``None`` (SQL NULL)."""
    return None if value is None else encode(value, what, key)


def decode(text: str | None) -> Any:
    """The value of JSON text written by :func:`encode`; ``None`` for SQL NULL."""
    return None if text is None else json.loads(text)


def require_name(name: Any, what: str) -> str:
    """Check that a variable name or state key is a string.

    Raises:
        StoreError: ``name`` is not a ``str``.
    """
    if not isinstance(name, str):
        raise StoreError(f"{what} names must be strings, got {name!r}", key=repr(name))
    return str.__str__(name)


def require_names(names: Iterable[Any], what: str) -> list[str]:
    """:func:`require_name` for each of ``names`` (the variables or state keys to delete)."""
    return [require_name(name, what) for name in names] if names else []


def copy_map(values: Mapping[Any, Any], kind: str) -> dict[str, Any]:
    """Variables or state entries (``kind`` names them in messages), checked and copied; the
    message is made only for a value that is not JSON."""
    copied = {}
    for name, value in values.items():
        if name.__class__ is not str:
            name = require_name(name, kind)
        try:
            copied[name] = _copy(value)
        except (_NotJSON, RecursionError):
            raise _not_json(value, f"{kind} '{name}'", name) from None
    return copied


def encode_map(
    values: Mapping[Any, Any], kind: str, encoded: dict[int, str] | None = None
) -> list[tuple[str, str]]:
    """Variables or state entries (``kind`` names them in messages) as (name, JSON text) pairs.

    ``encoded`` holds the text of values encoded already, by ``id()``: objects that the caller
    keeps alive while it keeps ``encoded``. The text of each long string encoded here is added
    to it (see :func:`encode_known`).
    """
    pairs = []
    for name, value in values.items():
        if name.__class__ is not str:
            name = require_name(name, kind)
        text = encoded.get(id(value)) if encoded else None
        if text is None:
            text = quick_encode(value)
            if text is None:
                text = _encode_checked(value, f"{kind} '{name}'", name)
            elif encoded is not None and len(text) >= LONG_TEXT:
                encoded[id(value)] = text
        pairs.append((name, text))
    return pairs


#: The shortest text of a value that :func:`encode_map` keeps for :func:`encode_known`.
LONG_TEXT = 64


def encode_known(value: Any, encoded: Mapping[int, str]) -> str | None:
    """What :func:`quick_encode` returns for ``value``, made of the texts ``encoded`` holds
    (by ``id()``) for it or for the values of a dict that are in it: a step's output usually
    holds the long values it sets, or is one (the result a run ends with), encoded a moment
    ago as variables. A dict none of whose values ``encoded`` holds goes to the C encoder,
    which is quicker; ``None`` as for :func:`quick_encode`."""
    known = encoded.get(id(value))
    if known is not None:
        return known
    if value.__class__ is not dict or not encoded:
        return quick_encode(value)
    parts = []
    reused = False
    for key, item in value.items():
        if key.__class__ is not str or not key.isascii():
            return quick_encode(value)
        text = encoded.get(id(item))
        if text is None:
            text = quick_encode(item)
            if text is None:
                return None
        else:
            reused = True
        parts.append(f"{_encode_str(key)}:{text}")
    return "{" + ",".join(parts) + "}" if reused else quick_encode(value)
