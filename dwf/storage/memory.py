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

from dwf.errors import InvalidTransition, LeaseLost, StoreError
from dwf.storage._json import clone, copy_value, require_name
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
        """Insert a new execution; see :meth:`dwf.storage.base.Store.create`."""
        self._check_open()
        if record.id in self._executions:
            raise InvalidTransition(
                f"execution '{record.id}' already exists; choose another id",
                execution_id=record.id,
            )
        created_at = record.created_at or self._clock()
        stored = ExecutionRecord(
            id=record.id,
            workflow_id=record.workflow_id,
            definition_hash=record.definition_hash,
            status=Status(record.status),
            input=copy_value(record.input, "the execution input", "input"),
            variables=_copy_map(record.variables, "variable"),
            state=_copy_map(record.state, "state key"),
            position=copy_value(record.position, "the position", "position"),
            output=copy_value(record.output, "the execution output", "output"),
            halt=copy_value(record.halt, "the halt", "halt"),
            error=copy_value(record.error, "the error", "error"),
            parent_id=record.parent_id,
            parent_step=record.parent_step,
            owner=record.owner,
            lease_expires_at=record.lease_expires_at,
            deadline=record.deadline,
            wake_at=record.wake_at,
            cancel_requested=bool(record.cancel_requested),
            version=1,
            created_at=created_at,
            updated_at=record.updated_at or created_at,
        )
        self._definitions.setdefault(record.definition_hash, definition)
        self._executions[record.id] = stored
        self._entries[record.id] = []
        return _copy_record(stored)

    async def load(self, execution_id: str) -> ExecutionRecord | None:
        """The execution with its variables and state, or ``None``."""
        self._check_open()
        stored = self._executions.get(execution_id)
        return None if stored is None else _copy_record(stored)

    async def load_definition(self, definition_hash: str) -> str | None:
        """The definition text stored under that hash, or ``None``."""
        self._check_open()
        return self._definitions.get(definition_hash)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        """Apply the checkpoint atomically; see :meth:`dwf.storage.base.Store.checkpoint`."""
        self._check_open()
        cp = checkpoint
        stored = self._executions.get(cp.execution_id)
        if stored is None or stored.owner != cp.owner:
            raise _lease_lost(cp.execution_id, cp.owner, stored)
        # Copy (and so check) everything before changing anything: a bad value writes nothing.
        set_variables = _copy_map(cp.set_variables, "variable") if cp.set_variables else None
        set_state = _copy_map(cp.set_state, "state key") if cp.set_state else None
        position = copy_value(cp.position, "the position", "position")
        output = copy_value(cp.output, "the execution output", "output") if cp.set_output else None
        halt = copy_value(cp.halt, "the halt", "halt") if cp.set_halt else None
        error = copy_value(cp.error, "the error", "error") if cp.set_error else None
        status = cp.status if cp.status.__class__ is Status else Status(cp.status)
        log = self._entries[cp.execution_id]
        entries = [
            _copy_entry(e, cp.execution_id, seq)
            for seq, e in enumerate(cp.entries, start=len(log) + 1)
        ]
        deleted_variables = [require_name(n, "variable") for n in cp.delete_variables]
        deleted_state = [require_name(n, "state key") for n in cp.delete_state]

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
        if cp.set_output:
            stored.output = output
        if cp.set_halt:
            stored.halt = halt
        if cp.set_error:
            stored.error = error
        if cp.set_wake_at:
            stored.wake_at = cp.wake_at
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
        """Compare-and-set ownership on ``version``; the full record, or ``None`` if it lost."""
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
        """Extend the lease if ``owner`` still runs the execution (version unchanged)."""
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
        """Compare-and-set the status on ``version``, release the execution, write ``error``."""
        self._check_open()
        stored = self._executions.get(execution_id)
        if stored is None or stored.version != expected_version:
            return False
        new_error = copy_value(error, "the error", "error")
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
        """Flag the execution for cancellation (version unchanged); False if it is unknown."""
        self._check_open()
        stored = self._executions.get(execution_id)
        if stored is None:
            return False
        stored.cancel_requested = True
        return True

    async def entries(self, execution_id: str) -> list[AuditEntry]:
        """The execution's audit entries in ``seq`` order."""
        self._check_open()
        log = self._entries.get(execution_id, [])
        return [_copy_entry(e, execution_id, e.seq, check=False) for e in log]

    async def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | None = None,
        parent_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionSummary]:
        """Executions matching every given filter, newest first, paged."""
        self._check_open()
        found = [
            r
            for r in self._executions.values()
            if (workflow_id is None or r.workflow_id == workflow_id)
            and (status is None or r.status == status)
            and (parent_id is None or r.parent_id == parent_id)
        ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [_summary(r) for r in found[max(offset, 0) : max(offset, 0) + max(limit, 0)]]

    async def find_due(self, *, now: float, limit: int = 100) -> list[ExecutionSummary]:
        """Executions whose lease expired or whose wake-up time or deadline passed, oldest first."""
        self._check_open()
        due = [r for r in self._executions.values() if _is_due(r, now)]
        due.sort(key=lambda r: (r.created_at, r.id))
        return [_summary(r) for r in due[: max(limit, 0)]]

    async def delete(self, execution_id: str) -> bool:
        """Delete the execution and its entries; the definition stays. True if it existed."""
        self._check_open()
        self._entries.pop(execution_id, None)
        return self._executions.pop(execution_id, None) is not None

    async def close(self) -> None:
        """Drop everything; later calls raise :class:`dwf.errors.StoreError`."""
        self._closed = True
        self._executions.clear()
        self._entries.clear()
        self._definitions.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the memory store is closed; open a new store", url=self.url)


def _copy_map(values: Any, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        name = require_name(name, kind)
        out[name] = copy_value(value, f"{kind} '{name}'", name)
    return out


def _copy_record(r: ExecutionRecord) -> ExecutionRecord:
    return ExecutionRecord(
        id=r.id,
        workflow_id=r.workflow_id,
        definition_hash=r.definition_hash,
        status=r.status,
        input=clone(r.input),
        variables={name: clone(value) for name, value in r.variables.items()},
        state={key: clone(value) for key, value in r.state.items()},
        position=list(r.position),
        output=clone(r.output),
        halt=clone(r.halt),
        error=clone(r.error),
        parent_id=r.parent_id,
        parent_step=r.parent_step,
        owner=r.owner,
        lease_expires_at=r.lease_expires_at,
        deadline=r.deadline,
        wake_at=r.wake_at,
        cancel_requested=r.cancel_requested,
        version=r.version,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _copy_entry(e: AuditEntry, execution_id: str, seq: int, *, check: bool = True) -> AuditEntry:
    if check:
        output = copy_value(e.output, f"the output of entry {seq} ({e.step_id})", "output")
        error = copy_value(e.error, f"the error of entry {seq} ({e.step_id})", "error")
    else:
        output, error = clone(e.output), clone(e.error)
    return AuditEntry(
        execution_id=execution_id,
        step_path=e.step_path,
        step_id=e.step_id,
        step_type=e.step_type,
        action=e.action,
        started_at=e.started_at,
        finished_at=e.finished_at,
        attempt=e.attempt,
        output=output,
        error=error,
        seq=seq,
    )


def _summary(r: ExecutionRecord) -> ExecutionSummary:
    return ExecutionSummary(
        id=r.id,
        workflow_id=r.workflow_id,
        status=r.status,
        parent_id=r.parent_id,
        owner=r.owner,
        lease_expires_at=r.lease_expires_at,
        deadline=r.deadline,
        wake_at=r.wake_at,
        cancel_requested=r.cancel_requested,
        version=r.version,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _is_due(r: ExecutionRecord, now: float) -> bool:
    if r.status not in _DUE_STATUSES:
        return False
    if r.status is Status.RUNNING and r.lease_expires_at is not None and r.lease_expires_at <= now:
        return True
    return (r.wake_at is not None and r.wake_at <= now) or (
        r.deadline is not None and r.deadline <= now
    )


def _lease_lost(execution_id: str, owner: str, stored: ExecutionRecord | None) -> LeaseLost:
    if stored is None:
        return LeaseLost(
            f"execution '{execution_id}' no longer exists; stop running it",
            execution_id=execution_id,
            owner=owner,
        )
    holder = f"owned by '{stored.owner}'" if stored.owner else f"{stored.status} and unowned"
    return LeaseLost(
        f"execution '{execution_id}' is {holder}, not owned by '{owner}'; "
        "another worker took it over or released it, so this one must stop running it",
        execution_id=execution_id,
        owner=owner,
    )
