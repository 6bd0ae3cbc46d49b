"""The SQL of :class:`dwf.storage.sqlite.SQLiteStore`: schema, migrations and one function per
operation. Everything here runs on the store's worker thread, inside a transaction that the store
opened (``BEGIN IMMEDIATE`` for writes), and takes values already encoded as JSON text.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import astuple

from dwf.errors import StoreError
from dwf.storage import _rows as rows
from dwf.storage._errors import already_exists, newer_schema
from dwf.storage._rows import CheckpointRow, EntryRow, FindRow, NewExecution, StatusRow
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


_EXEC_COLUMNS = ", ".join(rows.EXECUTION_COLUMNS)
_ENTRY_COLUMNS = ", ".join(rows.ENTRY_COLUMNS)
_SUMMARY_COLUMNS = ", ".join(rows.SUMMARY_COLUMNS)


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
        raise newer_schema(f"the SQLite store {path!r}", found, SCHEMA_VERSION, path=path)
    return found


# -- operations (conn is inside the transaction the store opened) ----------------------------


def create(conn: sqlite3.Connection, new: NewExecution, definition: str) -> ExecutionRecord:
    row = new.row
    if conn.execute("SELECT 1 FROM executions WHERE id = ?", (row.id,)).fetchone():
        raise already_exists(row.id)
    conn.execute(
        "INSERT OR IGNORE INTO definitions (hash, source, created_at) VALUES (?, ?, ?)",
        (row.definition_hash, definition, row.created_at),
    )
    marks = ", ".join("?" * len(rows.EXECUTION_COLUMNS))
    conn.execute(f"INSERT INTO executions ({_EXEC_COLUMNS}) VALUES ({marks})", astuple(row))
    _upsert(conn, "variables", "name", row.id, new.variables)
    _upsert(conn, "state", "key", row.id, new.state)
    record = load(conn, row.id)
    assert record is not None
    return record


def load(conn: sqlite3.Connection, execution_id: str) -> ExecutionRecord | None:
    found = conn.execute(
        f"SELECT {_EXEC_COLUMNS} FROM executions WHERE id = ?", (execution_id,)
    ).fetchone()
    if found is None:
        return None
    variables = conn.execute(
        "SELECT name, value FROM variables WHERE execution_id = ?", (execution_id,)
    )
    state = conn.execute("SELECT key, value FROM state WHERE execution_id = ?", (execution_id,))
    return rows.record_from_row(found, variables, state)


def load_definition(conn: sqlite3.Connection, definition_hash: str) -> str | None:
    found = conn.execute(
        "SELECT source FROM definitions WHERE hash = ?", (definition_hash,)
    ).fetchone()
    return None if found is None else str(found[0])


def checkpoint(conn: sqlite3.Connection, cp: CheckpointRow) -> int:
    eid = cp.execution_id
    found = conn.execute(
        f"SELECT {rows.CHECKED_COLUMNS} FROM executions WHERE id = ?", (eid,)
    ).fetchone()
    columns = rows.checkpoint_columns(cp, found)
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
    assignments = ", ".join(f"{name} = ?" for name in columns)
    conn.execute(f"UPDATE executions SET {assignments} WHERE id = ?", (*columns.values(), eid))
    return int(columns["version"])


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


def set_status(conn: sqlite3.Connection, change: StatusRow) -> bool:
    eid = change.execution_id
    changed = conn.execute(
        "UPDATE executions SET status = ?, error = ?, owner = NULL, lease_expires_at = NULL,"
        " version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
        (change.status, change.error, change.now, eid, change.expected_version),
    ).rowcount
    if changed != 1:
        return False
    if change.entry is not None:
        _append_entries(conn, eid, [change.entry])
    return True


def request_cancel(conn: sqlite3.Connection, execution_id: str) -> bool:
    changed = conn.execute(
        "UPDATE executions SET cancel_requested = 1 WHERE id = ?", (execution_id,)
    ).rowcount
    return bool(changed == 1)


def entries(conn: sqlite3.Connection, execution_id: str) -> list[AuditEntry]:
    found = conn.execute(
        f"SELECT seq, {_ENTRY_COLUMNS} FROM entries WHERE execution_id = ? ORDER BY seq",
        (execution_id,),
    )
    return [rows.entry_from_row(execution_id, seq, values) for seq, *values in found]


def find(conn: sqlite3.Connection, query: FindRow) -> list[ExecutionSummary]:
    used = query.given()
    where = " AND ".join(f"{name} = ?" for name in used) or "1"
    found = conn.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM executions WHERE {where}"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        (*used.values(), query.limit, query.offset),
    )
    return [rows.summary_from_row(row) for row in found]


def find_due(conn: sqlite3.Connection, now: float, limit: int) -> list[ExecutionSummary]:
    # Three OR terms, each served by its (status, time) index.
    found = conn.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM executions"
        " WHERE (status = 'running' AND lease_expires_at <= :now)"
        " OR (status IN ('pending', 'running', 'halted') AND wake_at <= :now)"
        " OR (status IN ('pending', 'running', 'halted') AND deadline <= :now)"
        " ORDER BY created_at, id LIMIT :limit",
        {"now": now, "limit": limit},
    )
    return [rows.summary_from_row(row) for row in found]


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


def _append_entries(conn: sqlite3.Connection, eid: str, new: list[EntryRow]) -> None:
    if not new:
        return
    last = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM entries WHERE execution_id = ?", (eid,)
    ).fetchone()[0]
    marks = ", ".join("?" * (len(rows.ENTRY_COLUMNS) + 2))
    conn.executemany(
        f"INSERT INTO entries (execution_id, seq, {_ENTRY_COLUMNS}) VALUES ({marks})",
        [(eid, last + i, *astuple(row)) for i, row in enumerate(new, start=1)],
    )
