"""The in-memory store: plain dicts, for tests, development and the engine benchmarks.

Nothing survives the process. Values are copied on the way in and on the way out, so a caller that
mutates a record it passed or received never changes what is stored. Every method runs without
awaiting anything, so on one event loop each call is atomic and no lock is needed; the store is
not thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dwf.errors import StoreError
from dwf.storage import _rows as rows
from dwf.storage._errors import already_exists, lease_lost
from dwf.storage._json import clone, copy_map, copy_value, require_names
from dwf.storage.base import (
    AuditEntry,
    Checkpoint,
    ExecutionRecord,
    ExecutionSummary,
    Status,
)

__all__ = ["MemoryStore"]

_DUE_STATUSES = frozenset({Status.PENDING, Status.RUNNING, Status.HALTED})


class MemoryStore:
    """A :class:`~dwf.storage.base.Store` that keeps everything in dicts.

    Args:
        clock: Returns the current Unix time; used for ``created_at`` and ``updated_at``.
    """

    url = "memory://"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._executions: dict[str, ExecutionRecord] = {}
        self._entries: dict[str, list[AuditEntry]] = {}
        self._definitions: dict[str, str] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._executions)} executions)"

    async def create(self, record: ExecutionRecord, definition: str) -> ExecutionRecord:
        """See :meth:`dwf.storage.base.Store.create`."""
        self._check_open()
        if record.id in self._executions:
            raise already_exists(record.id)
        stored = rows.copy_as(
            record,
            ExecutionRecord,
            status=Status(record.status),
            **rows.creation_values(record, self._clock, copy_value, copy_value),
            variables=copy_map(record.variables, "variable"),
            state=copy_map(record.state, "state key"),
        )
        self._definitions.setdefault(record.definition_hash, definition)
        self._executions[record.id] = stored
        self._entries[record.id] = []
        return _copy_record(stored)

    async def load(self, execution_id: str) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.load`."""
        self._check_open()
        stored = self._executions.get(execution_id)
        return None if stored is None else _copy_record(stored)

    async def load_definition(self, definition_hash: str) -> str | None:
        """See :meth:`dwf.storage.base.Store.load_definition`."""
        self._check_open()
        return self._definitions.get(definition_hash)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        """See :meth:`dwf.storage.base.Store.checkpoint`."""
        self._check_open()
        cp = checkpoint
        stored = self._executions.get(cp.execution_id)
        if stored is None or stored.owner != cp.owner:
            found = None if stored is None else (stored.owner, stored.status)
            raise lease_lost(cp.execution_id, cp.owner, found)
        # Copy (and so check) everything before changing anything: a bad value writes nothing.
        set_variables = copy_map(cp.set_variables, "variable") if cp.set_variables else None
        set_state = copy_map(cp.set_state, "state key") if cp.set_state else None
        position = rows.position_value(cp, copy_value)
        changes = rows.checkpoint_values(cp, copy_value)
        status = cp.status if cp.status.__class__ is Status else Status(cp.status)
        log = self._entries[cp.execution_id]
        entries = [
            _copy_entry(e, cp.execution_id, seq)
            for seq, e in enumerate(cp.entries, start=len(log) + 1)
        ]
        deleted_variables = require_names(cp.delete_variables, "variable")
        deleted_state = require_names(cp.delete_state, "state key")

        for name in deleted_variables:
            stored.variables.pop(name, None)
        for name in deleted_state:
            stored.state.pop(name, None)
        if set_variables:
            stored.variables.update(set_variables)
        if set_state:
            stored.state.update(set_state)
        log.extend(entries)
        stored.status = status
        stored.position = position
        if status is Status.RUNNING:
            if cp.lease_expires_at is not None:
                stored.lease_expires_at = cp.lease_expires_at
        else:
            stored.owner = None
            stored.lease_expires_at = None
        for name, value in changes.items():
            setattr(stored, name, value)
        stored.version += 1
        stored.updated_at = self._clock()
        return stored.version

    async def claim(
        self,
        execution_id: str,
        *,
        owner: str,
        lease_expires_at: float,
        expected_version: int,
    ) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.claim`."""
        self._check_open()
        stored = self._executions.get(execution_id)
        if stored is None or stored.version != expected_version:
            return None
        stored.status = Status.RUNNING
        stored.owner = owner
        stored.lease_expires_at = lease_expires_at
        stored.version += 1
        stored.updated_at = self._clock()
        return _copy_record(stored)

    async def renew(self, execution_id: str, *, owner: str, lease_expires_at: float) -> bool:
        """See :meth:`dwf.storage.base.Store.renew`."""
        self._check_open()
        stored = self._executions.get(execution_id)
        if stored is None or stored.owner != owner or stored.status is not Status.RUNNING:
            return False
        stored.lease_expires_at = lease_expires_at
        return True

    async def set_status(
        self,
        execution_id: str,
        *,
        expected_version: int,
        status: Status,
        error: dict[str, Any] | None = None,
        entry: AuditEntry | None = None,
    ) -> bool:
        """See :meth:`dwf.storage.base.Store.set_status`."""
        self._check_open()
        stored = self._executions.get(execution_id)
        if stored is None or stored.version != expected_version:
            return False
        new_error = rows.error_value(error, copy_value)
        log = self._entries[execution_id]
        new_entry = None if entry is None else _copy_entry(entry, execution_id, len(log) + 1)
        stored.status = Status(status)
        stored.error = new_error
        stored.owner = None
        stored.lease_expires_at = None
        if new_entry is not None:
            log.append(new_entry)
        stored.version += 1
        stored.updated_at = self._clock()
        return True

    async def request_cancel(self, execution_id: str) -> bool:
        """See :meth:`dwf.storage.base.Store.request_cancel`."""
        self._check_open()
        stored = self._executions.get(execution_id)
        if stored is None:
            return False
        stored.cancel_requested = True
        return True

    async def entries(self, execution_id: str) -> list[AuditEntry]:
        """See :meth:`dwf.storage.base.Store.entries`."""
        self._check_open()
        log = self._entries.get(execution_id, [])
        return [
            rows.copy_as(e, AuditEntry, output=clone(e.output), error=clone(e.error)) for e in log
        ]

    async def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | None = None,
        parent_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionSummary]:
        """See :meth:`dwf.storage.base.Store.find`."""
        self._check_open()
        found = [
            r
            for r in self._executions.values()
            if (workflow_id is None or r.workflow_id == workflow_id)
            and (status is None or r.status == status)
            and (parent_id is None or r.parent_id == parent_id)
        ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        start = max(offset, 0)
        return [rows.copy_as(r, ExecutionSummary) for r in found[start : start + max(limit, 0)]]

    async def find_due(self, *, now: float, limit: int = 100) -> list[ExecutionSummary]:
        """See :meth:`dwf.storage.base.Store.find_due`."""
        self._check_open()
        due = [r for r in self._executions.values() if _is_due(r, now)]
        due.sort(key=lambda r: (r.created_at, r.id))
        return [rows.copy_as(r, ExecutionSummary) for r in due[: max(limit, 0)]]

    async def delete(self, execution_id: str) -> bool:
        """See :meth:`dwf.storage.base.Store.delete`."""
        self._check_open()
        self._entries.pop(execution_id, None)
        return self._executions.pop(execution_id, None) is not None

    async def close(self) -> None:
        """See :meth:`dwf.storage.base.Store.close`; drops everything."""
        self._closed = True
        self._executions.clear()
        self._entries.clear()
        self._definitions.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the memory store is closed; open a new store", url=self.url)


def _copy_record(r: ExecutionRecord) -> ExecutionRecord:
    return rows.copy_as(
        r,
        ExecutionRecord,
        input=clone(r.input),
        variables={name: clone(value) for name, value in r.variables.items()},
        state={key: clone(value) for key, value in r.state.items()},
        position=list(r.position),
        output=clone(r.output),
        halt=clone(r.halt),
        error=clone(r.error),
    )


def _copy_entry(e: AuditEntry, execution_id: str, seq: int) -> AuditEntry:
    """A checked copy of a new entry, numbered ``seq``. Spelled out, not
    :func:`~dwf.storage._rows.copy_as`: this runs on every step of the in-memory engine."""
    return AuditEntry(
        execution_id=execution_id,
        step_path=e.step_path,
        step_id=e.step_id,
        step_type=e.step_type,
        action=e.action,
        started_at=e.started_at,
        finished_at=e.finished_at,
        attempt=e.attempt,
        output=copy_value(e.output, f"the output of entry {seq} ({e.step_id})", "output"),
        error=copy_value(e.error, f"the error of entry {seq} ({e.step_id})", "error"),
        seq=seq,
    )


def _is_due(r: ExecutionRecord, now: float) -> bool:
    if r.status not in _DUE_STATUSES:
        return False
    if r.status is Status.RUNNING and r.lease_expires_at is not None and r.lease_expires_at <= now:
        return True
    return (r.wake_at is not None and r.wake_at <= now) or (
        r.deadline is not None and r.deadline <= now
    )
