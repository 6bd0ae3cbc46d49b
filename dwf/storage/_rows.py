"""Executions, checkpoints and audit entries as rows of JSON text, and rows back as records.

The SQLite and PostgreSQL stores write these rows as they are; the Redis store turns them into hash
fields and script arguments. Encoding checks every value (see :mod:`dwf.storage._json`) on the
calling side, before anything is written, so a bad value writes nothing. Decoding accepts what any
of the three hands back: SQLite's ``0``/``1`` flags, PostgreSQL's booleans and already-decoded
``json`` columns, and Redis's text.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from dwf.storage._errors import lease_lost
from dwf.storage._json import (
    LONG_TEXT,
    decode,
    encode,
    encode_known,
    encode_map,
    encode_nullable,
    quick_encode,
    require_names,
)
from dwf.storage.base import AuditEntry, Checkpoint, ExecutionRecord, ExecutionSummary, Status

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")

# How a JSON value is checked and converted: copy_value, encode or encode_nullable.
Convert = Callable[[Any, str, str], Any]


@dataclass(slots=True)
class ExecutionRow:
    """The ``executions`` columns, in table order, with JSON fields encoded."""

    id: str
    workflow_id: str
    definition_hash: str
    status: str
    input: str
    position: str
    output: str | None
    halt: str | None
    error: str | None
    parent_id: str | None
    parent_step: str | None
    owner: str | None
    lease_expires_at: float | None
    deadline: float | None
    wake_at: float | None
    cancel_requested: bool
    version: int
    created_at: float
    updated_at: float


@dataclass(slots=True)
class EntryRow:
    """An audit entry with its JSON fields encoded (``seq`` is assigned on insert)."""

    step_path: str
    step_id: str
    step_type: str
    action: str
    attempt: int
    started_at: float
    finished_at: float
    output: str | None
    error: str | None


@dataclass(slots=True)
class NewExecution:
    """A new execution's row, and its variables and state as (name, JSON text) pairs."""

    row: ExecutionRow
    variables: list[tuple[str, str]]
    state: list[tuple[str, str]]


@dataclass(slots=True)
class CheckpointRow:
    """A checkpoint with its values encoded; ``fields`` holds the optional column updates."""

    execution_id: str
    owner: str
    status: str
    position: str
    set_variables: list[tuple[str, str]]
    delete_variables: list[str]
    set_state: list[tuple[str, str]]
    delete_state: list[str]
    entries: list[EntryRow]
    fields: dict[str, Any]
    lease_expires_at: float | None
    now: float


@dataclass(slots=True)
class StatusRow:
    """The arguments of :meth:`~dwf.storage.base.Store.set_status`, encoded."""

    execution_id: str
    expected_version: int
    status: str
    error: str | None
    entry: EntryRow | None
    now: float


@dataclass(slots=True)
class FindRow:
    """The filters of :meth:`~dwf.storage.base.Store.find` (``None``: any) and its page."""

    workflow_id: str | None
    status: str | None
    parent_id: str | None
    limit: int
    offset: int

    def given(self) -> dict[str, str]:
        """The filters that were given, by column."""
        filters = {
            "workflow_id": self.workflow_id,
            "status": self.status,
            "parent_id": self.parent_id,
        }
        return {name: value for name, value in filters.items() if value is not None}


EXECUTION_COLUMNS = tuple(f.name for f in fields(ExecutionRow))
ENTRY_COLUMNS = tuple(f.name for f in fields(EntryRow))
SUMMARY_COLUMNS = tuple(f.name for f in fields(ExecutionSummary))
JSON_COLUMNS = frozenset({"input", "position", "output", "halt", "error"})
# What checkpoint_columns() needs to know about the stored row, in this order.
CHECKED_COLUMNS = "owner, status, lease_expires_at, version"


def copy_as(source: object, cls: type[D], **changes: Any) -> D:
    """A new ``cls`` whose fields are the same-named attributes of ``source``, but ``changes``."""
    names, read = _fields_of(cls)
    values = dict(zip(names, read(source), strict=True))
    values.update(changes)
    return cls(**values)


def values_of(row: DataclassInstance) -> tuple[Any, ...]:
    """The field values of a dataclass row, in order (a shallow ``dataclasses.astuple``)."""
    values: tuple[Any, ...] = _fields_of(type(row))[1](row)
    return values


@functools.cache
def _fields_of(cls: type[DataclassInstance]) -> tuple[tuple[str, ...], Callable[[Any], Any]]:
    """The field names of ``cls``, and a function that reads them all from an object."""
    names = tuple(f.name for f in fields(cls))
    return names, operator.attrgetter(*names)


# -- checking and encoding ------------------------------------------------------------------


def creation_values(
    record: ExecutionRecord,
    clock: Callable[[], float],
    convert: Convert,
    convert_nullable: Convert,
) -> dict[str, Any]:
    """What the store sets or checks when it creates an execution: the JSON values, checked and
    converted, the flag as a bool, version 1, and the times.

    Args:
        record: The execution to create.
        clock: Dates the execution when ``record.created_at`` is not set.
        convert: Converts ``input`` and ``position``.
        convert_nullable: Converts ``output``, ``halt`` and ``error``.
    """
    created_at = record.created_at or clock()
    return {
        "input": convert(record.input, "the execution input", "input"),
        "position": convert(record.position, "the position", "position"),
        "output": convert_nullable(record.output, "the execution output", "output"),
        "halt": convert_nullable(record.halt, "the halt", "halt"),
        "error": convert_nullable(record.error, "the error", "error"),
        "cancel_requested": bool(record.cancel_requested),
        "version": 1,
        "created_at": created_at,
        "updated_at": record.updated_at or created_at,
    }


def position_value(checkpoint: Checkpoint, convert: Convert) -> Any:
    """The checkpoint's position, checked and converted."""
    return convert(checkpoint.position, "the position", "position")


def checkpoint_values(checkpoint: Checkpoint, convert: Convert) -> dict[str, Any]:
    """The fields whose ``set_*`` flag is true, checked and converted (``wake_at`` as it is)."""
    cp = checkpoint
    values: dict[str, Any] = {}
    if cp.set_output:
        values["output"] = convert(cp.output, "the execution output", "output")
    if cp.set_halt:
        values["halt"] = convert(cp.halt, "the halt", "halt")
    if cp.set_error:
        values["error"] = convert(cp.error, "the error", "error")
    if cp.set_wake_at:
        values["wake_at"] = cp.wake_at
    return values


def error_value(error: dict[str, Any] | None, convert: Convert) -> Any:
    """The error :meth:`~dwf.storage.base.Store.set_status` writes, checked and converted."""
    return convert(error, "the error", "error")


def new_execution(record: ExecutionRecord, clock: Callable[[], float]) -> NewExecution:
    """A new execution, encoded; ``clock`` dates it when ``record.created_at`` is not set."""
    row = copy_as(
        record,
        ExecutionRow,
        status=Status(record.status).value,
        **creation_values(record, clock, encode, encode_nullable),
    )
    variables = encode_map(record.variables, "variable")
    return NewExecution(row, variables, encode_map(record.state, "state key"))


def entry_row(entry: AuditEntry, encoded: Mapping[int, str] | None = None) -> EntryRow:
    """An audit entry, encoded (with the texts of values ``encoded`` holds by ``id()``, as
    :func:`~dwf.storage._json.encode_known` does)."""
    output: str | None = None
    if entry.output is not None:
        value = entry.output
        output = (encode_known(value, encoded) if encoded else quick_encode(value)) or encode(
            value, _entry_part("output", entry), "output"
        )
    error: str | None = None
    if entry.error is not None:
        value = entry.error
        error = quick_encode(value) or encode(value, _entry_part("error", entry), "error")
    return EntryRow(
        entry.step_path,
        entry.step_id,
        entry.step_type,
        entry.action,
        entry.attempt,
        entry.started_at,
        entry.finished_at,
        output,
        error,
    )


def _entry_part(part: str, entry: AuditEntry) -> str:
    return f"the {part} of the entry of step {entry.step_path!r}"


def checkpoint_row(checkpoint: Checkpoint, clock: Callable[[], float]) -> CheckpointRow:
    """A checkpoint, encoded; ``clock`` gives the new ``updated_at``."""
    cp = checkpoint
    # A value is often in two or three places: an assign or call step outputs the (long) values
    # it sets, the step that ends a run outputs the value that becomes its `result` and the
    # execution's output. The texts encoded here, by id() of objects that cp keeps alive
    # throughout (no other object can have those ids): each is encoded once.
    encoded: dict[int, str] = {}
    set_variables = encode_map(cp.set_variables, "variable", encoded)
    entries = [entry_row(e) for e in cp.entries[:-1]]
    if cp.entries:
        last = cp.entries[-1]
        entries.append(entry_row(last, encoded))
        output = entries[-1].output
        if output is not None and len(output) >= LONG_TEXT:
            encoded[id(last.output)] = output

    def encode_once(value: Any, what: str, key: str | None = None) -> str | None:
        known = encoded.get(id(value))
        return known if known is not None else encode_nullable(value, what, key)

    return CheckpointRow(
        execution_id=cp.execution_id,
        owner=cp.owner,
        status=cp.status.value if cp.status.__class__ is Status else Status(cp.status).value,
        position=position_value(cp, encode),
        set_variables=set_variables,
        delete_variables=require_names(cp.delete_variables, "variable"),
        set_state=encode_map(cp.set_state, "state key"),
        delete_state=require_names(cp.delete_state, "state key"),
        entries=entries,
        lease_expires_at=cp.lease_expires_at,
        now=clock(),
        fields=checkpoint_values(cp, encode_once),
    )


def status_row(
    execution_id: str,
    expected_version: int,
    status: Status,
    error: dict[str, Any] | None,
    entry: AuditEntry | None,
    clock: Callable[[], float],
) -> StatusRow:
    """The arguments of :meth:`~dwf.storage.base.Store.set_status`, encoded; ``clock`` gives the
    new ``updated_at``."""
    return StatusRow(
        execution_id=execution_id,
        expected_version=expected_version,
        status=Status(status).value,
        error=error_value(error, encode_nullable),
        entry=None if entry is None else entry_row(entry),
        now=clock(),
    )


def find_row(
    workflow_id: str | None, status: Status | None, parent_id: str | None, limit: int, offset: int
) -> FindRow:
    """The arguments of :meth:`~dwf.storage.base.Store.find`; a negative limit or offset is 0."""
    status_text = None if status is None else Status(status).value
    return FindRow(workflow_id, status_text, parent_id, max(limit, 0), max(offset, 0))


def checkpoint_columns(cp: CheckpointRow, found: Sequence[Any] | None) -> dict[str, Any]:
    """The ``executions`` columns a checkpoint sets, by name.

    Args:
        cp: The checkpoint.
        found: The stored :data:`CHECKED_COLUMNS` of the execution, ``None`` if it is missing.

    Raises:
        LeaseLost: The execution is missing or not owned by ``cp.owner``.
    """
    if found is None or found[0] != cp.owner:
        holder = None if found is None else (found[0], found[1])
        raise lease_lost(cp.execution_id, cp.owner, holder)
    _, _, lease, version = found
    running = cp.status == Status.RUNNING.value
    if cp.lease_expires_at is not None:
        lease = cp.lease_expires_at
    return {
        "status": cp.status,
        "position": cp.position,
        "owner": cp.owner if running else None,
        "lease_expires_at": lease if running else None,
        **cp.fields,
        "version": version + 1,
        "updated_at": cp.now,
    }


# -- decoding --------------------------------------------------------------------------------


def _same(value: Any) -> Any:
    return value


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _flag(value: Any) -> bool:
    """A stored flag: SQLite's 1, PostgreSQL's true and Redis's "1" are true."""
    return bool(value == 1 or value == "1")


# How each column of a summary or record is typed on the way out; the others stay as they are.
_TYPES: dict[str, Callable[[Any], Any]] = {
    "status": Status,
    "lease_expires_at": _number,
    "deadline": _number,
    "wake_at": _number,
    "cancel_requested": _flag,
    "version": int,
    "created_at": float,
    "updated_at": float,
}


def _typed(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return {name: _TYPES.get(name, _same)(value) for name, value in zip(columns, row, strict=True)}


def record_from_row(
    row: Sequence[Any],
    variables: Iterable[tuple[str, Any]],
    state: Iterable[tuple[str, Any]],
    *,
    decoded: bool = False,
) -> ExecutionRecord:
    """An execution from its :data:`EXECUTION_COLUMNS` and its (name, value) pairs.

    Args:
        row: The values of :data:`EXECUTION_COLUMNS`, in that order.
        variables: The variables as (name, value) pairs.
        state: The state as (key, value) pairs.
        decoded: The JSON values arrive decoded already (PostgreSQL's ``json`` columns);
            otherwise they are JSON text.
    """
    load = _same if decoded else decode
    values = _typed(EXECUTION_COLUMNS, row)
    for name in JSON_COLUMNS:
        values[name] = load(values[name])
    return ExecutionRecord(
        **values,
        variables={name: load(value) for name, value in variables},
        state={key: load(value) for key, value in state},
    )


def entry_from_row(
    execution_id: str, seq: int, row: Sequence[Any], *, decoded: bool = False
) -> AuditEntry:
    """An audit entry from its :data:`ENTRY_COLUMNS` (``decoded`` as in :func:`record_from_row`)."""
    values = dict(zip(ENTRY_COLUMNS, row, strict=True))
    if not decoded:
        values["output"] = decode(values["output"])
        values["error"] = decode(values["error"])
    return AuditEntry(execution_id=execution_id, **values, seq=int(seq))


def summary_from_row(row: Sequence[Any]) -> ExecutionSummary:
    """A listing row from its :data:`SUMMARY_COLUMNS`."""
    return ExecutionSummary(**_typed(SUMMARY_COLUMNS, row))
