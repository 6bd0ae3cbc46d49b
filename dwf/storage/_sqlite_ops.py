"""The SQL of :class:`dwf.storage.sqlite.SQLiteStore`: schema, migrations and one function per
operation. Everything here runs on the store's worker thread, inside a transaction that the store
opened (``BEGIN IMMEDIATE`` for writes), and takes values already encoded as JSON text.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import astuple, dataclass, fields
from typing import Any

from dwf.errors import InvalidTransition, LeaseLost, StoreError
from dwf.storage._json import decode
from dwf.storage.base import AuditEntry, ExecutionRecord, ExecutionSummary, Status

# Each migration is a list of statements, applied in order in one transaction; never edit a
# released one, append a new one. schema_version holds one row per applied migration.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE definitions (
            hash TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE executions (
            id TEXT PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            definition_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT NOT NULL,
            position TEXT NOT NULL,
            output TEXT,
            halt TEXT,
            error TEXT,
            parent_id TEXT,
            parent_step TEXT,
            owner TEXT,
            lease_expires_at REAL,
            deadline REAL,
            wake_at REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            version INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX executions_by_created ON executions (created_at, id)",
        "CREATE INDEX executions_by_workflow ON executions (workflow_id, created_at, id)",
        "CREATE INDEX executions_by_status ON executions (status, created_at, id)",
        "CREATE INDEX executions_by_parent ON executions (parent_id, created_at, id)"
        " WHERE parent_id IS NOT NULL",
        # find_due: status first, so finished executions with old deadlines are never visited.
        "CREATE INDEX executions_due_lease ON executions (status, lease_expires_at)"
        " WHERE lease_expires_at IS NOT NULL",
        "CREATE INDEX executions_due_wake ON executions (status, wake_at)"
        " WHERE wake_at IS NOT NULL",
        "CREATE INDEX executions_due_deadline ON executions (status, deadline)"
        " WHERE deadline IS NOT NULL",
        """CREATE TABLE variables (
            execution_id TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (execution_id, name)
        )""",
        """CREATE TABLE state (
            execution_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (execution_id, key)
        )""",
        """CREATE TABLE entries (
            execution_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            step_path TEXT NOT NULL,
            step_id TEXT NOT NULL,
            step_type TEXT NOT NULL,
            action TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            output TEXT,
            error TEXT,
            PRIMARY KEY (execution_id, seq)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


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
    cancel_requested: int
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


_EXEC_COLUMNS = ", ".join(f.name for f in fields(ExecutionRow))
_ENTRY_COLUMNS = ", ".join(f.name for f in fields(EntryRow))
_SUMMARY_COLUMNS = (
    "id, workflow_id, status, parent_id, owner, lease_expires_at, deadline, wake_at,"
    " cancel_requested, version, created_at, updated_at"
)


def not_a_store_message(path: str, detail: str) -> str:
    """The message for a file that is not a dwf SQLite store."""
    return (
        f"{path!r} is not a dwf SQLite store or is corrupt: {detail}. "
        "Move it aside or choose another --store."
    )


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema up to :data:`SCHEMA_VERSION` in one transaction (no-op when current).

    Raises:
        StoreError: The file belongs to a newer dwf or to another program.
    """
    if _schema_version(conn, path) == SCHEMA_VERSION:
        return  # the common case takes no write lock
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = _schema_version(conn, path)  # again: another process may have migrated
        if found == 0:
            tables = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            others = [row[0] for row in tables]
            if others:
                detail = f"it holds other tables ({', '.join(sorted(others)[:5])})"
                raise StoreError(not_a_store_message(path, detail), path=path)
            conn.execute(
                "CREATE TABLE schema_version"
                " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise


def _schema_version(conn: sqlite3.Connection, path: str) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    found = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] if exists else 0
    found = int(found or 0)
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"the SQLite store {path!r} was written by a newer dwf (schema version {found}; this "
            f"dwf knows up to {SCHEMA_VERSION}). Upgrade dwf (pip install -U dwf) to use it.",
            path=path,
            schema_version=found,
        )
    return found


# -- operations (conn is inside the transaction the store opened) ----------------------------


def create(
    conn: sqlite3.Connection,
    row: ExecutionRow,
    variables: list[tuple[str, str]],
    state: list[tuple[str, str]],
    definition: str,
) -> ExecutionRecord:
    if conn.execute("SELECT 1 FROM executions WHERE id = ?", (row.id,)).fetchone():
        raise InvalidTransition(
            f"execution '{row.id}' already exists; choose another id", execution_id=row.id
        )
    conn.execute(
        "INSERT OR IGNORE INTO definitions (hash, source, created_at) VALUES (?, ?, ?)",
        (row.definition_hash, definition, row.created_at),
    )
    marks = ", ".join("?" * len(fields(ExecutionRow)))
    conn.execute(f"INSERT INTO executions ({_EXEC_COLUMNS}) VALUES ({marks})", astuple(row))
    _upsert(conn, "variables", "name", row.id, variables)
    _upsert(conn, "state", "key", row.id, state)
    record = load(conn, row.id)
    assert record is not None
    return record


def load(conn: sqlite3.Connection, execution_id: str) -> ExecutionRecord | None:
    found = conn.execute(
        f"SELECT {_EXEC_COLUMNS} FROM executions WHERE id = ?", (execution_id,)
    ).fetchone()
    if found is None:
        return None
    row = ExecutionRow(*found)
    variables = conn.execute(
        "SELECT name, value FROM variables WHERE execution_id = ?", (execution_id,)
    )
    state = conn.execute("SELECT key, value FROM state WHERE execution_id = ?", (execution_id,))
    return ExecutionRecord(
        id=row.id,
        workflow_id=row.workflow_id,
        definition_hash=row.definition_hash,
        status=Status(row.status),
        input=decode(row.input),
        variables={name: decode(value) for name, value in variables},
        state={key: decode(value) for key, value in state},
        position=decode(row.position),
        output=decode(row.output),
        halt=decode(row.halt),
        error=decode(row.error),
        parent_id=row.parent_id,
        parent_step=row.parent_step,
        owner=row.owner,
        lease_expires_at=row.lease_expires_at,
        deadline=row.deadline,
        wake_at=row.wake_at,
        cancel_requested=bool(row.cancel_requested),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def load_definition(conn: sqlite3.Connection, definition_hash: str) -> str | None:
    found = conn.execute(
        "SELECT source FROM definitions WHERE hash = ?", (definition_hash,)
    ).fetchone()
    return None if found is None else str(found[0])


def checkpoint(conn: sqlite3.Connection, cp: CheckpointRow) -> int:
    found = conn.execute(
        "SELECT owner, status, lease_expires_at, version FROM executions WHERE id = ?",
        (cp.execution_id,),
    ).fetchone()
    if found is None or found[0] != cp.owner:
        raise _lease_lost(cp.execution_id, cp.owner, found)
    _, _, lease, version = found
    eid = cp.execution_id
    # Deletes first, then sets: a name in both ends up set.
    conn.executemany(
        "DELETE FROM variables WHERE execution_id = ? AND name = ?",
        [(eid, name) for name in cp.delete_variables],
    )
    conn.executemany(
        "DELETE FROM state WHERE execution_id = ? AND key = ?",
        [(eid, key) for key in cp.delete_state],
    )
    _upsert(conn, "variables", "name", eid, cp.set_variables)
    _upsert(conn, "state", "key", eid, cp.set_state)
    _append_entries(conn, eid, cp.entries)
    running = cp.status == Status.RUNNING.value
    if cp.lease_expires_at is not None:
        lease = cp.lease_expires_at
    columns: dict[str, Any] = {
        "status": cp.status,
        "position": cp.position,
        "owner": cp.owner if running else None,
        "lease_expires_at": lease if running else None,
        **cp.fields,
        "version": version + 1,
        "updated_at": cp.now,
    }
    assignments = ", ".join(f"{name} = ?" for name in columns)
    conn.execute(f"UPDATE executions SET {assignments} WHERE id = ?", (*columns.values(), eid))
    return int(version) + 1


def claim(
    conn: sqlite3.Connection,
    execution_id: str,
    owner: str,
    lease_expires_at: float,
    expected_version: int,
    now: float,
) -> ExecutionRecord | None:
    changed = conn.execute(
        "UPDATE executions SET status = ?, owner = ?, lease_expires_at = ?,"
        " version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
        (Status.RUNNING.value, owner, lease_expires_at, now, execution_id, expected_version),
    ).rowcount
    return load(conn, execution_id) if changed == 1 else None


def renew(conn: sqlite3.Connection, execution_id: str, owner: str, lease_expires_at: float) -> bool:
    changed = conn.execute(
        "UPDATE executions SET lease_expires_at = ? WHERE id = ? AND owner = ? AND status = ?",
        (lease_expires_at, execution_id, owner, Status.RUNNING.value),
    ).rowcount
    return bool(changed == 1)


def set_status(
    conn: sqlite3.Connection,
    execution_id: str,
    expected_version: int,
    status: str,
    error: str | None,
    entry: EntryRow | None,
    now: float,
) -> bool:
    changed = conn.execute(
        "UPDATE executions SET status = ?, error = ?, owner = NULL, lease_expires_at = NULL,"
        " version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
        (status, error, now, execution_id, expected_version),
    ).rowcount
    if changed != 1:
        return False
    if entry is not None:
        _append_entries(conn, execution_id, [entry])
    return True


def request_cancel(conn: sqlite3.Connection, execution_id: str) -> bool:
    changed = conn.execute(
        "UPDATE executions SET cancel_requested = 1 WHERE id = ?", (execution_id,)
    ).rowcount
    return bool(changed == 1)


def entries(conn: sqlite3.Connection, execution_id: str) -> list[AuditEntry]:
    rows = conn.execute(
        f"SELECT seq, {_ENTRY_COLUMNS} FROM entries WHERE execution_id = ? ORDER BY seq",
        (execution_id,),
    )
    out = []
    for seq, *values in rows:
        e = EntryRow(*values)
        out.append(
            AuditEntry(
                execution_id=execution_id,
                step_path=e.step_path,
                step_id=e.step_id,
                step_type=e.step_type,
                action=e.action,
                started_at=e.started_at,
                finished_at=e.finished_at,
                attempt=e.attempt,
                output=decode(e.output),
                error=decode(e.error),
                seq=seq,
            )
        )
    return out


def find(
    conn: sqlite3.Connection,
    workflow_id: str | None,
    status: str | None,
    parent_id: str | None,
    limit: int,
    offset: int,
) -> list[ExecutionSummary]:
    filters = {"workflow_id": workflow_id, "status": status, "parent_id": parent_id}
    used = {name: value for name, value in filters.items() if value is not None}
    where = " AND ".join(f"{name} = ?" for name in used) or "1"
    rows = conn.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM executions WHERE {where}"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        (*used.values(), limit, offset),
    )
    return [_summary(row) for row in rows]


def find_due(conn: sqlite3.Connection, now: float, limit: int) -> list[ExecutionSummary]:
    # Three OR terms, each served by its (status, time) index.
    rows = conn.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM executions"
        " WHERE (status = 'running' AND lease_expires_at <= :now)"
        " OR (status IN ('pending', 'running', 'halted') AND wake_at <= :now)"
        " OR (status IN ('pending', 'running', 'halted') AND deadline <= :now)"
        " ORDER BY created_at, id LIMIT :limit",
        {"now": now, "limit": limit},
    )
    return [_summary(row) for row in rows]


def delete(conn: sqlite3.Connection, execution_id: str) -> bool:
    for table in ("variables", "state", "entries"):
        conn.execute(f"DELETE FROM {table} WHERE execution_id = ?", (execution_id,))
    changed = conn.execute("DELETE FROM executions WHERE id = ?", (execution_id,)).rowcount
    return bool(changed == 1)


# -- helpers ---------------------------------------------------------------------------------


def _upsert(
    conn: sqlite3.Connection, table: str, key: str, eid: str, values: list[tuple[str, str]]
) -> None:
    if values:
        conn.executemany(
            f"INSERT INTO {table} (execution_id, {key}, value) VALUES (?, ?, ?)"
            f" ON CONFLICT (execution_id, {key}) DO UPDATE SET value = excluded.value",
            [(eid, name, value) for name, value in values],
        )


def _append_entries(conn: sqlite3.Connection, eid: str, rows: list[EntryRow]) -> None:
    if not rows:
        return
    last = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM entries WHERE execution_id = ?", (eid,)
    ).fetchone()[0]
    marks = ", ".join("?" * (len(fields(EntryRow)) + 2))
    conn.executemany(
        f"INSERT INTO entries (execution_id, seq, {_ENTRY_COLUMNS}) VALUES ({marks})",
        [(eid, last + i, *astuple(row)) for i, row in enumerate(rows, start=1)],
    )


def _summary(row: tuple[Any, ...]) -> ExecutionSummary:
    eid, workflow_id, status, parent_id, owner, lease, deadline, wake_at, cancel, *rest = row
    version, created_at, updated_at = rest
    return ExecutionSummary(
        id=eid,
        workflow_id=workflow_id,
        status=Status(status),
        parent_id=parent_id,
        owner=owner,
        lease_expires_at=lease,
        deadline=deadline,
        wake_at=wake_at,
        cancel_requested=bool(cancel),
        version=version,
        created_at=created_at,
        updated_at=updated_at,
    )


def _lease_lost(execution_id: str, owner: str, found: tuple[Any, ...] | None) -> LeaseLost:
    if found is None:
        return LeaseLost(
            f"execution '{execution_id}' no longer exists; stop running it",
            execution_id=execution_id,
            owner=owner,
        )
    holder = f"owned by '{found[0]}'" if found[0] else f"{found[1]} and unowned"
    return LeaseLost(
        f"execution '{execution_id}' is {holder}, not owned by '{owner}'; "
        "another worker took it over or released it, so this one must stop running it",
        execution_id=execution_id,
        owner=owner,
    )
