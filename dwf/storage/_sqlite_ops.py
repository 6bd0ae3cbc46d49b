"""The SQL of :class:`dwf.storage.sqlite.SQLiteStore`: schema, migrations and one function per
operation. Everything here runs on the store's worker thread, inside a transaction that the store
opened (``BEGIN IMMEDIATE`` for writes), and takes values already encoded as JSON text.
"""

from __future__ import annotations

import functools
import sqlite3
import time

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
    # 2: fewer pages written per checkpoint. executions gets an integer key (num), the number
    # of its entries (last_seq) and the root frame's position (the state key "|pos"), all in the
    # row that every checkpoint rewrites anyway. entries is keyed (num << 32) + seq, one B-tree
    # with the rows inline, so appending an entry writes one page instead of a table page and
    # an index page.
    (
        """CREATE TABLE executions_v2 (
            num INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
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
            updated_at REAL NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0,
            root_position TEXT
        )""",
        """INSERT INTO executions_v2
            SELECT x.rowid, x.id, x.workflow_id, x.definition_hash, x.status, x.input,
                x.position, x.output, x.halt, x.error, x.parent_id, x.parent_step, x.owner,
                x.lease_expires_at, x.deadline, x.wake_at, x.cancel_requested, x.version,
                x.created_at, x.updated_at,
                (SELECT COALESCE(MAX(e.seq), 0) FROM entries AS e WHERE e.execution_id = x.id),
                (SELECT s.value FROM state AS s WHERE s.execution_id = x.id AND s.key = '|pos')
            FROM executions AS x ORDER BY x.rowid""",
        "DELETE FROM state WHERE key = '|pos'",
        """CREATE TABLE entries_v2 (
            key INTEGER PRIMARY KEY,
            step_path TEXT NOT NULL,
            step_id TEXT NOT NULL,
            step_type TEXT NOT NULL,
            action TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            output TEXT,
            error TEXT
        )""",
        """INSERT INTO entries_v2
            SELECT (x.num << 32) + e.seq, e.step_path, e.step_id, e.step_type, e.action,
                e.attempt, e.started_at, e.finished_at, e.output, e.error
            FROM entries AS e JOIN executions_v2 AS x ON x.id = e.execution_id
            ORDER BY 1""",
        "DROP TABLE entries",
        "DROP TABLE executions",
        "ALTER TABLE executions_v2 RENAME TO executions",
        "ALTER TABLE entries_v2 RENAME TO entries",
        "CREATE INDEX executions_by_created ON executions (created_at, id)",
        "CREATE INDEX executions_by_workflow ON executions (workflow_id, created_at, id)",
        "CREATE INDEX executions_by_status ON executions (status, created_at, id)",
        "CREATE INDEX executions_by_parent ON executions (parent_id, created_at, id)"
        " WHERE parent_id IS NOT NULL",
        "CREATE INDEX executions_due_lease ON executions (status, lease_expires_at)"
        " WHERE lease_expires_at IS NOT NULL",
        "CREATE INDEX executions_due_wake ON executions (status, wake_at)"
        " WHERE wake_at IS NOT NULL",
        "CREATE INDEX executions_due_deadline ON executions (status, deadline)"
        " WHERE deadline IS NOT NULL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


_EXEC_COLUMNS = ", ".join(rows.EXECUTION_COLUMNS)
_ENTRY_COLUMNS = ", ".join(rows.ENTRY_COLUMNS)
_SUMMARY_COLUMNS = ", ".join(rows.SUMMARY_COLUMNS)

#: The state key of the root frame's position, which the engine rewrites with every step. It is
#: kept in the executions row (column root_position), which every checkpoint rewrites anyway.
ROOT_POSITION = "|pos"
#: An entry's key is (num << 32) + seq: each execution has 2**32 - 1 sequence numbers, and num
#: stays below 2**31 so that keys fit SQLite's 64-bit integers.
_SEQ_BITS = 32
_MAX_SEQ = (1 << _SEQ_BITS) - 1
_MAX_NUM = (1 << 31) - 1
#: What checkpoint() reads to check the owner and to number the new entries.
_CHECKED = f"SELECT {rows.CHECKED_COLUMNS}, num, last_seq FROM executions WHERE id = ?"
_UPSERT = {
    table: f"INSERT INTO {table} (execution_id, {key}, value) VALUES (?, ?, ?)"
    f" ON CONFLICT (execution_id, {key}) DO UPDATE SET value = excluded.value"
    for table, key in (("variables", "name"), ("state", "key"))
}
_DELETE = {
    "variables": "DELETE FROM variables WHERE execution_id = ? AND name = ?",
    "state": "DELETE FROM state WHERE execution_id = ? AND key = ?",
}
_INSERT_ENTRY = (
    f"INSERT INTO entries (key, {_ENTRY_COLUMNS}) VALUES"
    f" ({', '.join('?' * (len(rows.ENTRY_COLUMNS) + 1))})"
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
    state = dict(new.state)
    root_position = state.pop(ROOT_POSITION, None)
    marks = ", ".join("?" * (len(rows.EXECUTION_COLUMNS) + 1))
    num = conn.execute(
        f"INSERT INTO executions ({_EXEC_COLUMNS}, root_position) VALUES ({marks})",
        (*rows.values_of(row), root_position),
    ).lastrowid
    if num is None or num > _MAX_NUM:
        raise StoreError(
            "the SQLite store has numbered 2**31 executions, the most it can; copy the "
            "executions you need to a new store"
        )
    _upsert(conn, "variables", row.id, new.variables)
    _upsert(conn, "state", row.id, list(state.items()))
    record = load(conn, row.id)
    assert record is not None
    return record


def load(conn: sqlite3.Connection, execution_id: str) -> ExecutionRecord | None:
    found = conn.execute(
        f"SELECT {_EXEC_COLUMNS}, root_position FROM executions WHERE id = ?", (execution_id,)
    ).fetchone()
    if found is None:
        return None
    variables = conn.execute(
        "SELECT name, value FROM variables WHERE execution_id = ?", (execution_id,)
    )
    state = conn.execute(
        "SELECT key, value FROM state WHERE execution_id = ?", (execution_id,)
    ).fetchall()
    root_position = found[-1]
    if root_position is not None:
        state.append((ROOT_POSITION, root_position))
    return rows.record_from_row(found[:-1], variables, state)


def load_definition(conn: sqlite3.Connection, definition_hash: str) -> str | None:
    found = conn.execute(
        "SELECT source FROM definitions WHERE hash = ?", (definition_hash,)
    ).fetchone()
    return None if found is None else str(found[0])


def checkpoint(conn: sqlite3.Connection, cp: CheckpointRow) -> int:
    eid = cp.execution_id
    found = conn.execute(_CHECKED, (eid,)).fetchone()
    columns = rows.checkpoint_columns(cp, found and found[:4])
    _, status, lease, _, num, last_seq = found
    # Setting an indexed column rewrites its index entry even to the same value: a page more.
    if columns["status"] == status:
        del columns["status"]
    if columns["lease_expires_at"] == lease:
        del columns["lease_expires_at"]
    # Deletes first, then sets: a name in both ends up set.
    if cp.delete_variables:
        conn.executemany(_DELETE["variables"], [(eid, name) for name in cp.delete_variables])
    if cp.delete_state:
        keys = [(eid, key) for key in cp.delete_state if key != ROOT_POSITION]
        if len(keys) < len(cp.delete_state):
            columns["root_position"] = None
        if keys:
            conn.executemany(_DELETE["state"], keys)
    if cp.set_variables:
        _upsert(conn, "variables", eid, cp.set_variables)
    if cp.set_state:
        others = [(key, value) for key, value in cp.set_state if key != ROOT_POSITION]
        if len(others) < len(cp.set_state):
            columns["root_position"] = dict(cp.set_state)[ROOT_POSITION]
        _upsert(conn, "state", eid, others)
    if cp.entries:
        columns["last_seq"] = _append_entries(conn, num, last_seq, cp.entries)
    conn.execute(_update_sql(tuple(columns)), (*columns.values(), num))
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
    found = conn.execute(
        "SELECT num, last_seq FROM executions WHERE id = ? AND version = ?",
        (change.execution_id, change.expected_version),
    ).fetchone()
    if found is None:
        return False
    num, last_seq = found
    if change.entry is not None:
        last_seq = _append_entries(conn, num, last_seq, [change.entry])
    conn.execute(
        "UPDATE executions SET status = ?, error = ?, owner = NULL, lease_expires_at = NULL,"
        " version = version + 1, updated_at = ?, last_seq = ? WHERE num = ?",
        (change.status, change.error, change.now, last_seq, num),
    )
    return True


def request_cancel(conn: sqlite3.Connection, execution_id: str) -> bool:
    changed = conn.execute(
        "UPDATE executions SET cancel_requested = 1 WHERE id = ?", (execution_id,)
    ).rowcount
    return bool(changed == 1)


def entries(conn: sqlite3.Connection, execution_id: str) -> list[AuditEntry]:
    found = conn.execute("SELECT num FROM executions WHERE id = ?", (execution_id,)).fetchone()
    if found is None:
        return []
    first = found[0] << _SEQ_BITS
    rows_found = conn.execute(
        f"SELECT key, {_ENTRY_COLUMNS} FROM entries WHERE key BETWEEN ? AND ? ORDER BY key",
        (first, first + _MAX_SEQ),
    )
    return [rows.entry_from_row(execution_id, key - first, values) for key, *values in rows_found]


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
    found = conn.execute("SELECT num FROM executions WHERE id = ?", (execution_id,)).fetchone()
    if found is None:
        return False
    first = found[0] << _SEQ_BITS
    conn.execute("DELETE FROM entries WHERE key BETWEEN ? AND ?", (first, first + _MAX_SEQ))
    for table in ("variables", "state"):
        conn.execute(f"DELETE FROM {table} WHERE execution_id = ?", (execution_id,))
    conn.execute("DELETE FROM executions WHERE num = ?", (found[0],))
    return True


# -- helpers ---------------------------------------------------------------------------------


@functools.cache
def _update_sql(names: tuple[str, ...]) -> str:
    """The UPDATE of these executions columns (a few combinations, made once each)."""
    assignments = ", ".join(f"{name} = ?" for name in names)
    return f"UPDATE executions SET {assignments} WHERE num = ?"


def _upsert(conn: sqlite3.Connection, table: str, eid: str, values: list[tuple[str, str]]) -> None:
    if len(values) == 1:
        conn.execute(_UPSERT[table], (eid, *values[0]))
    elif values:
        conn.executemany(_UPSERT[table], [(eid, name, value) for name, value in values])


def _append_entries(conn: sqlite3.Connection, num: int, last_seq: int, new: list[EntryRow]) -> int:
    """Insert the entries after ``last_seq``; return the new last seq."""
    end = last_seq + len(new)
    if end > _MAX_SEQ:
        raise StoreError(
            f"an execution of the SQLite store has {_MAX_SEQ} audit entries, the most it can hold"
        )
    first = (num << _SEQ_BITS) + last_seq
    if len(new) == 1:
        conn.execute(_INSERT_ENTRY, (first + 1, *rows.values_of(new[0])))
    else:
        conn.executemany(
            _INSERT_ENTRY,
            [(first + i, *rows.values_of(row)) for i, row in enumerate(new, start=1)],
        )
    return end
