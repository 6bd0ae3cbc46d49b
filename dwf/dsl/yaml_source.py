"""Safe YAML loading that remembers where every value and key came from.

The loader reads PyYAML's event stream (libyaml when available) and builds plain data itself, so no
tag can create an object and every value gets a 1-based line and column. Rules, chosen for
JSON-compatible workflow files:

* Scalars follow the YAML 1.2 core schema: booleans are ``true``/``True``/``TRUE`` and the same
  forms of ``false`` (``yes``, ``on``, ``off``... stay strings); null is ``null``, ``~`` or empty;
  integers are decimal without leading zeros (``007`` stays a string), ``0x`` hex or ``0o`` octal;
  floats need a dot or an exponent; ``.inf``/``.nan`` are refused; dates, ``1:30`` and ``1_000``
  stay strings. Quoted and block scalars are strings.
* The only tags are ``!`` and ``!!str`` (a string), ``!!map`` and ``!!seq``; others are refused.
* Mapping keys must be strings and unique within their mapping.
* An alias is a deep copy of its anchored value; values inside the copy are marked at the alias.
* Merge keys (``<<: *defaults``, ``<<: [*a, *b]``) work as in YAML 1.1: the mapping's own keys win,
  then earlier mappings win over later ones. Merged entries come after the mapping's own keys and
  are marked at the ``<<`` value. A quoted ``"<<"`` is an ordinary key.
* Limits: :data:`MAX_BYTES` of source, :data:`MAX_DEPTH` nested collections, :data:`MAX_NODES`
  values after alias expansion (the "billion laughs" guard).

Every failure is a :class:`~dwf.errors.WorkflowLoadError` holding one located diagnostic.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import yaml
from yaml import events

from dwf.errors import Diagnostic, WorkflowLoadError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "Mark", "Path", "SourceDocument"]
__all__ += ["from_mapping", "load_yaml", "load_yaml_file"]

Path = tuple[str | int, ...]

MAX_BYTES: int = 4 * 1024 * 1024
MAX_DEPTH: int = 100
MAX_NODES: int = 1_000_000


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in the source text."""

    line: int
    column: int


@dataclass
class SourceDocument:
    """Plain data loaded from YAML (or given as a dict), with the position of each value.

    Attributes:
        data: The document as dicts, lists, str, int, float, bool and None.
        marks: The position of each value by its path, e.g. ``("steps", 3, "retry_delay")``.
        file: The name used in messages (the path as given), or None.
        text: The decoded source text, or None when the data was given in Python.
        key_marks: The position of each mapping key, by the path of its entry.
    """

    data: Any
    marks: dict[Path, Mark]
    file: str | None = None
    text: str | None = None
    key_marks: dict[Path, Mark] = field(default_factory=dict)

    def mark(self, path: Path) -> Mark | None:
        """Returns the position of the value at ``path``, else of its nearest marked ancestor."""
        for end in range(len(path), -1, -1):
            found = self.marks.get(path[:end])
            if found is not None:
                return found
        return None

    def key_mark(self, path: Path) -> Mark | None:
        """Returns the position of the key of the entry at ``path``, else :meth:`mark`."""
        return self.key_marks.get(path) or self.mark(path)


def load_yaml(text: str | bytes, *, file: str | None = None) -> SourceDocument:
    """Loads one YAML document safely, keeping the position of every value and key.

    Args:
        text: YAML text; bytes are decoded as UTF-8 (a byte order mark is accepted).
        file: The name to show in messages.

    Returns:
        The document; its ``data`` is None when the document is empty.

    Raises:
        WorkflowLoadError: The source is too large, not UTF-8 or not valid YAML, or it breaks a
            rule of the module docstring.
    """
    source = _decode(text, file)
    parser = _PARSER(source)
    builder = _Builder(parser, file)
    try:
        data = builder.document()
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, file, source) from exc
    except RecursionError:
        raise _error(_too_deep(), file) from None
    finally:
        parser.dispose()
    return SourceDocument(data, builder.marks, file, source, builder.key_marks)


def load_yaml_file(path: str | os.PathLike[str]) -> SourceDocument:
    """Loads a YAML file with :func:`load_yaml`; ``file`` is the path as given.

    Raises:
        WorkflowLoadError: The file cannot be read, is larger than :data:`MAX_BYTES` (checked
            before reading it), or its content cannot be loaded.
    """
    name = os.fspath(path)
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:
            raise _error(_too_large(size), name)
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # bounded, in case the file grew or is special
    except OSError as exc:
        raise _error(f"cannot read '{name}': {exc.strerror or exc}") from exc
    return load_yaml(raw, file=name)


def from_mapping(data: Mapping[str, Any]) -> SourceDocument:
    """Wraps a workflow given as Python data, deep-copied into plain types, without marks.

    Raises:
        WorkflowLoadError: ``data`` is not a mapping, a key is not a string, a value is not
            JSON-like (str, int, float, bool, None, mapping, list, tuple), or the nesting is
            deeper than :data:`MAX_DEPTH` (which also catches self-references).
    """
    if not isinstance(data, Mapping):
        raise _error(f"a workflow given as data must be a mapping, got {type(data).__name__}")
    return SourceDocument(_plain(data, (), [0]), {})


class _EventSource(Protocol):
    def get_event(self) -> events.Event: ...
    def peek_event(self) -> events.Event: ...
    def check_event(self, *choices: type[events.Event]) -> bool: ...
    def dispose(self) -> None: ...


# libyaml is about 15 times faster; both parsers give the same events, marks counted in characters.
_PARSER: Callable[[str], _EventSource] = getattr(yaml, "CBaseLoader", yaml.BaseLoader)

_STANDARD = "tag:yaml.org,2002:"
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+|0o[0-7]+")
_FLOAT = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
)
_NOT_FINITE = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
_NON_PRINTABLE = re.compile(r"[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_HINTS = {
    "mapping values are not allowed": "if a value contains ': ', put the value in quotes",
    "could not find expected ':'": "a key may lack its ':' or a quote may not be closed",
    "unexpected end of stream": "a quote or a bracket may not be closed",
    "cannot start any token": "quote values that start with '@', '`' or '%'",
}


@dataclass(slots=True)
class _Anchor:
    value: Any
    size: int  # values it holds, itself included
    levels: int  # nested collections it holds, itself included


class _Builder:
    """Builds plain data, value marks and key marks from one stream of parser events."""

    def __init__(self, parser: _EventSource, file: str | None) -> None:
        self.parser = parser
        self.file = file
        self.marks: dict[Path, Mark] = {}
        self.key_marks: dict[Path, Mark] = {}
        self.anchors: dict[str, _Anchor | None] = {}  # None while the anchored node is open
        self.nodes = 0
        self.levels = 0  # deepest collection level seen (relative to the innermost open anchor)
        self.aliased = False

    def document(self) -> Any:
        self.parser.get_event()  # StreamStartEvent
        if self.parser.check_event(events.StreamEndEvent):
            return None
        self.parser.get_event()  # DocumentStartEvent
        data = self.node(())
        self.parser.get_event()  # DocumentEndEvent
        if not self.parser.check_event(events.StreamEndEvent):
            extra = _mark(self.parser.get_event())
            message = (
                "expected one YAML document, found several; remove the '---' or split the file"
            )
            self.fail(message, extra)
        return data

    def node(self, path: Path) -> Any:
        event = self.parser.get_event()
        if isinstance(event, events.AliasEvent):
            return self.alias(event, path)
        self.marks[path] = _mark(event)
        anchor: str | None = getattr(event, "anchor", None)
        if anchor is not None:
            self.anchors[anchor] = None
            start, outer_levels, self.levels = self.nodes, self.levels, len(path)
        value: Any
        if isinstance(event, events.ScalarEvent):
            self.count(1, event)
            value = self.scalar(event)
        elif isinstance(event, events.SequenceStartEvent):
            self.collection(event, path, "seq")
            value = []
            while not self.parser.check_event(events.SequenceEndEvent):
                value.append(self.node((*path, len(value))))
            self.parser.get_event()
        else:
            value = self.mapping(event, path)
        if anchor is not None:
            self.anchors[anchor] = _Anchor(value, self.nodes - start, self.levels - len(path))
            self.levels = max(outer_levels, self.levels)
        return value

    def mapping(self, event: events.Event, path: Path) -> dict[str, Any]:
        self.collection(event, path, "map")
        result: dict[str, Any] = {}
        merged: list[dict[str, Any]] = []
        merge_mark = Mark(0, 0)
        while not self.parser.check_event(events.MappingEndEvent):
            key_event = self.parser.peek_event()
            if _is_merge_key(key_event):
                if merged:
                    self.fail("duplicate merge key '<<'; merge a list instead", _mark(key_event))
                self.parser.get_event()
                merge_mark = _mark(self.parser.peek_event())
                merged = self.merge_sources(path, merge_mark)
                continue
            key, key_mark = self.key()
            child = (*path, key)
            if key in result:
                first = self.key_marks[child].line
                self.fail(
                    f"duplicate key '{key}' (first defined at line {first}); keep one", key_mark
                )
            self.key_marks[child] = key_mark
            result[key] = self.node(child)
        self.parser.get_event()
        for source in merged:
            for key, value in source.items():
                if key not in result:
                    result[key] = value
                    self.marks[(*path, key)] = self.key_marks[(*path, key)] = merge_mark
        return result

    def merge_sources(self, path: Path, at: Mark) -> list[dict[str, Any]]:
        outer = self.marks, self.key_marks
        self.marks, self.key_marks = {}, {}  # the merged entries are marked at the '<<' value
        try:
            value = self.node((*path, "<<"))
        finally:
            self.marks, self.key_marks = outer
        sources = value if isinstance(value, list) else [value]
        if not sources or not all(isinstance(source, dict) for source in sources):
            got = _describe(value)
            self.fail(f"'<<' merges a mapping or a list of mappings, got {got}", at)
        return sources

    def collection(self, event: events.Event, path: Path, kind: str) -> None:
        tag = getattr(event, "tag", None)
        if tag not in (None, "!", _STANDARD + kind):
            self.fail(_unsupported_tag(tag), _mark(event))
        if len(path) + 1 > MAX_DEPTH:
            self.fail(_too_deep(), _mark(event))
        self.levels = max(self.levels, len(path) + 1)
        self.count(1, event)

    def key(self) -> tuple[str, Mark]:
        event = self.parser.get_event()
        at = _mark(event)
        if isinstance(event, events.AliasEvent):
            value = self.resolve_alias(event).value
        elif isinstance(event, events.ScalarEvent):
            self.count(1, event)
            value = self.scalar(event)
            if event.anchor is not None:
                self.anchors[event.anchor] = _Anchor(value, 1, 0)
        else:
            kind = "sequence" if isinstance(event, events.SequenceStartEvent) else "mapping"
            self.fail(f"mapping keys must be strings, got a {kind}", at)
        if not isinstance(value, str):
            quote = f" (quote it: '{event.value}')" if isinstance(event, events.ScalarEvent) else ""
            self.fail(f"mapping keys must be strings, got {_describe(value)}{quote}", at)
        return value, at

    def alias(self, event: events.AliasEvent, path: Path) -> Any:
        anchor = self.resolve_alias(event)
        if len(path) + anchor.levels > MAX_DEPTH:
            self.fail(_too_deep(), _mark(event))
        self.levels = max(self.levels, len(path) + anchor.levels)
        self.marks[path] = _mark(event)
        return _copy(anchor.value)

    def resolve_alias(self, event: events.AliasEvent) -> _Anchor:
        name = str(event.anchor)
        if name not in self.anchors:
            self.fail(f"alias '*{name}' has no anchor; define '&{name}' before it", _mark(event))
        anchor = self.anchors[name]
        if anchor is None:
            message = (
                f"alias '*{name}' is inside the node it names; recursive aliases are not allowed"
            )
            self.fail(message, _mark(event))
        self.aliased = True
        self.count(anchor.size, event)
        return anchor

    def scalar(self, event: events.ScalarEvent) -> Any:
        if event.tag not in (None, "!", _STANDARD + "str"):
            self.fail(_unsupported_tag(event.tag), _mark(event))
        if event.tag is not None or not event.implicit[0]:
            return event.value  # quoted, block or tagged as a string
        try:
            return _resolve_plain(event.value)
        except ValueError as exc:
            self.fail(str(exc), _mark(event))

    def count(self, size: int, event: events.Event) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            how = " through aliases" if self.aliased else ""
            self.fail(f"the document expands to more than {MAX_NODES:,} nodes{how}", _mark(event))

    def fail(self, message: str, at: Mark) -> NoReturn:
        raise _error(message, self.file, at)


def _resolve_plain(text: str) -> Any:
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT.fullmatch(text):
        try:
            return int(text, 0)
        except ValueError:  # more digits than sys.get_int_max_str_digits() allows
            raise ValueError(f"the integer {text[:20]}... is too large; quote it") from None
    if _FLOAT.fullmatch(text):
        if math.isinf(number := float(text)):
            raise ValueError(f"the number {text[:40]} is out of range; quote it")
        return number
    if _NOT_FINITE.fullmatch(text):
        raise ValueError(f"'{text}' is not a JSON number; quote it to keep it as text")
    return text


def _plain(value: Any, path: Path, counter: list[int]) -> Any:
    counter[0] += 1
    problem = ""
    if counter[0] > MAX_NODES:
        problem = f"the data holds more than {MAX_NODES:,} values"
    elif value is None or isinstance(value, bool):
        return value
    elif isinstance(value, str):
        return str.__str__(value)  # the plain type, also for enums and other subclasses
    elif isinstance(value, int):
        return int(value)
    elif isinstance(value, float) and math.isfinite(value):
        return float(value)
    elif isinstance(value, float):
        problem = f"{value} is not a JSON number"
    elif not isinstance(value, Mapping | list | tuple):
        problem = (
            f"unsupported value {_describe(value)}; use str, int, float, bool, None, dict, list"
        )
    elif len(path) + 1 > MAX_DEPTH:
        problem = f"{_too_deep()} (does the data contain itself?)"
    elif not isinstance(value, Mapping):
        return [_plain(item, (*path, index), counter) for index, item in enumerate(value)]
    elif bad_keys := [key for key in value if not isinstance(key, str)]:
        problem = f"mapping keys must be strings, got {_describe(bad_keys[0])}"
    else:
        return {key: _plain(item, (*path, key), counter) for key, item in value.items()}
    raise _error(f"{problem} (at {_format(path)})")


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _decode(source: str | bytes, file: str | None) -> str:
    if isinstance(source, bytes):
        if len(source) > MAX_BYTES:
            raise _error(_too_large(len(source)), file)
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            start = source.rfind(b"\n", 0, exc.start) + 1
            line = source.count(b"\n", 0, exc.start) + 1
            column = len(source[start : exc.start].decode("utf-8", "replace")) + 1
            bad = f"byte 0x{source[exc.start]:02x} at byte offset {exc.start}"
            message = f"the source is not valid UTF-8 ({bad}); save it as UTF-8"
            raise _error(message, file, Mark(line, column)) from None
    elif isinstance(source, str):
        text = source
        if len(text) > MAX_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            raise _error(_too_large(len(text.encode("utf-8", "surrogatepass"))), file)
    else:
        raise _error(f"expected YAML text as str or bytes, got {type(source).__name__}", file)
    text = text.removeprefix("\ufeff")
    if bad_char := _NON_PRINTABLE.search(text):
        index = bad_char.start()
        at = Mark(text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index))
        code = f"#x{ord(bad_char.group()):04x}"
        message = f"invalid YAML: unacceptable character {code}: control characters are not "
        message += "allowed; remove it, or write it as an escape inside double quotes"
        raise _error(message, file, at)
    return text


def _syntax_error(exc: yaml.YAMLError, file: str | None, text: str) -> WorkflowLoadError:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return _error(f"invalid YAML: {exc}", file)
    mark = exc.problem_mark or exc.context_mark
    problem = (exc.problem or exc.context or "syntax error").strip()
    context = f" ({exc.context.strip()})" if exc.problem and exc.context else ""
    hint = next((h for k, h in _HINTS.items() if k in problem), "check indentation and quoting")
    if mark is None:
        return _error(f"invalid YAML: {problem}{context}; {hint}", file)
    lines = text.split("\n")
    line = lines[mark.line] if mark.line < len(lines) else ""
    if line[: mark.column + 1].lstrip(" ").startswith("\t") or line[mark.column :][:1] == "\t":
        hint = "replace the tab with spaces (YAML does not indent with tabs), or quote the value"
    at = Mark(mark.line + 1, mark.column + 1)
    return _error(f"invalid YAML: {problem}{context}; {hint}", file, at)


def _error(message: str, file: str | None = None, at: Mark | None = None) -> WorkflowLoadError:
    line, column = (at.line, at.column) if at is not None else (None, None)
    return WorkflowLoadError([Diagnostic(message, file=file, line=line, column=column)])


def _mark(event: events.Event) -> Mark:
    at = event.start_mark
    return Mark(at.line + 1, at.column + 1) if at is not None else Mark(1, 1)


def _is_merge_key(event: events.Event) -> bool:
    if not isinstance(event, events.ScalarEvent):
        return False
    return event.value == "<<" and event.tag is None and bool(event.implicit[0])


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping | list | tuple):
        return "a mapping" if isinstance(value, Mapping) else "a sequence"
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    names = {bool: "boolean", int: "integer", float: "float"}
    return f"{names.get(type(value), type(value).__name__)} {shown}"


def _format(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "the top level"


def _unsupported_tag(tag: str | None) -> str:
    shown = f"!!{tag.removeprefix(_STANDARD)}" if tag and tag.startswith(_STANDARD) else tag
    return f"unsupported tag '{shown}': workflows hold plain YAML data; remove the tag"


def _too_deep() -> str:
    return f"the document is nested more than {MAX_DEPTH} levels deep; flatten it"


def _too_large(size: int) -> str:
    limit = f"the {MAX_BYTES:,}-byte limit"
    return f"the source is {size:,} bytes, more than {limit}; split it into sub-workflows"
