"""The SQL of :class:`dwf.storage.sqlite.SQLiteStore`: schema, migrations and one function per
operation. Everything here runs on the store's worker thread, inside a transaction that the store
opened (``BEGIN IMMEDIATE`` for writes), and takes values already encoded as JSON text.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from typing import Any, NamedTuple

from dwf.errors import StoreError
from dwf.storage import _rows as rows
from dwf.storage._errors import already_exists, lease_lost, newer_schema
from dwf.storage._json import encode as json_encode
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
    # 3: a journal. A checkpoint appends one row to the execution's log (its audit entries, the
    # last of them carrying the changes as JSON) and, unless it changes the status, lease,
    # output, halt, error or wake-up time (columns of the executions row it then updates),
    # writes nothing else: one page, like a plain INSERT. The rest of the executions row
    # (position, version, ...), variables and state are a snapshot, brought up to date (the
    # log's changes applied, the long ones cleared) by claims and set_status, and instead of
    # appending every SNAPSHOT_ROWS rows or SNAPSHOT_BYTES.
    # snap_n is the number of the execution's log rows the snapshot covers; a row's key is
    # (num << 32) + its number, its seq the number of audit entries up to and including it.
    (
        "ALTER TABLE executions ADD COLUMN snap_n INTEGER NOT NULL DEFAULT 0",
        "UPDATE executions SET snap_n = last_seq",
        """CREATE TABLE log (
            key INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL,
            step_path TEXT,
            step_id TEXT,
            step_type TEXT,
            action TEXT,
            attempt INTEGER,
            started_at REAL,
            finished_at REAL,
            output TEXT,
            error TEXT,
            version INTEGER,
            updated_at REAL,
            pending INTEGER,
            delta TEXT
        )""",
        """INSERT INTO log (key, seq, step_path, step_id, step_type, action, attempt,
                started_at, finished_at, output, error)
            SELECT key, key & 4294967295, step_path, step_id, step_type, action, attempt,
                started_at, finished_at, output, error
            FROM entries ORDER BY key""",
        "DROP TABLE entries",
    ),
    # 4: an execution's output may be the output of its last audit entry (the end step's, which
    # is also its `result`): output_at is then that log row's key and the output column NULL,
    # so that a large output is written once. root_position is renamed root_pos so that a
    # process still running an older dwf fails with a store error at its next read (and at a
    # write of that column) instead of reading executions without their output; the step
    # checkpoints it may write before that are the ones this version writes.
    (
        "ALTER TABLE executions ADD COLUMN output_at INTEGER",
        "ALTER TABLE executions RENAME COLUMN root_position TO root_pos",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


_EXEC_COLUMNS = ", ".join(rows.EXECUTION_COLUMNS)
_ENTRY_COLUMNS = ", ".join(rows.ENTRY_COLUMNS)
_SUMMARY_COLUMNS = ", ".join(rows.SUMMARY_COLUMNS)
#: What load() reads of the executions row: the output from the log row output_at names, if any.
_LOAD_COLUMNS = ", ".join(
    "COALESCE(output, (SELECT l.output FROM log AS l WHERE l.key = executions.output_at))"
    if name == "output"
    else name
    for name in rows.EXECUTION_COLUMNS
)

#: The state key of the root frame's position, which the engine rewrites with every step. It is
#: kept in the executions row (column root_pos), which every checkpoint rewrites anyway.
ROOT_POSITION = "|pos"
#: A log row's key is (num << 32) + n: each execution has 2**32 - 1 rows, and num stays below
#: 2**31 so that keys fit SQLite's 64-bit integers.
_ROW_BITS = 32
_MAX_ROWS = (1 << _ROW_BITS) - 1
_MAX_NUM = (1 << 31) - 1
#: A checkpoint brings the snapshot up to date instead of appending to the log once the log
#: holds this many rows, or this many bytes of changes, past the snapshot: what load() reads
#: and applies stays small.
SNAPSHOT_ROWS = 100
SNAPSHOT_BYTES = 1 << 20
_RUNNING = Status.RUNNING.value
#: Executions (x) with their last log row past the snapshot (l), if any.
_WITH_LAST_ROW = (
    " FROM executions AS x LEFT JOIN log AS l ON l.key = ("
    "SELECT key FROM log WHERE key > (x.num << 32) + x.snap_n AND key <= (x.num << 32) + 4294967295"
    " ORDER BY key DESC LIMIT 1)"
)
#: What checkpoint() reads when it does not know where the log ends: the owner and what it
#: checks, and the execution's last log row past the snapshot (NULLs when there is none).
_HEAD = (
    f"SELECT {', '.join(f'x.{c.strip()}' for c in rows.CHECKED_COLUMNS.split(','))},"
    f" x.num, x.last_seq, x.snap_n, l.key, l.seq, l.version, l.pending{_WITH_LAST_ROW}"
    " WHERE x.id = ?"
)
_CHECKED = f"SELECT {rows.CHECKED_COLUMNS}, num, last_seq, snap_n FROM executions WHERE id = ?"
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
    f"INSERT INTO log (key, seq, {_ENTRY_COLUMNS}) VALUES"
    f" ({', '.join('?' * (len(rows.ENTRY_COLUMNS) + 2))})"
)
_INSERT_JOURNAL = (
    f"INSERT INTO log (key, seq, {_ENTRY_COLUMNS}, version, updated_at, pending, delta) VALUES"
    f" ({', '.join('?' * (len(rows.ENTRY_COLUMNS) + 6))})"
)
_INSERT_CHANGES = (
    "INSERT INTO log (key, seq, version, updated_at, pending, delta) VALUES (?, ?, ?, ?, ?, ?)"
)
# The same appends, made only if the execution is still the one whose last row the store
# remembers (see Head): its number and id, owned by this owner, running, and with the version
# of the executions row that every snapshot write, claim and set_status changes.
_STILL = (
    " WHERE EXISTS (SELECT 1 FROM executions WHERE num = ? AND id = ? AND owner = ?"
    f" AND version = ? AND status = '{Status.RUNNING.value}')"
)
_APPEND_JOURNAL = _INSERT_JOURNAL.replace(" VALUES (", " SELECT ").removesuffix(")") + _STILL
_APPEND_CHANGES = _INSERT_CHANGES.replace(" VALUES (", " SELECT ").removesuffix(")") + _STILL
_NO_ENTRY = (None,) * len(rows.ENTRY_COLUMNS)
#: The summary columns, with the version and time of the last log row past the snapshot.
_SUMMARY_SELECT = (
    "SELECT "
    + ", ".join(
        {
            "version": "COALESCE(l.version, x.version)",
            "updated_at": "COALESCE(l.updated_at, x.updated_at)",
        }.get(c, f"x.{c}")
        for c in rows.SUMMARY_COLUMNS
    )
    + _WITH_LAST_ROW
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


class Head(NamedTuple):
    """What a store remembers of an execution it is running after a checkpoint: where its log
    ends. The next checkpoint of a step then appends without reading it first, if the
    executions row shows that nothing else wrote since (see ``_STILL``): anything that moves
    the snapshot or the owner changes that row's version or owner, and a row appended by
    anyone else takes the key this one would take."""

    num: int
    #: The executions row's own version (the snapshot's).
    row_version: int
    owner: str
    snap_n: int
    #: The log rows (n) and audit entries (seq) so far, the execution's version and the bytes
    #: of changes past the snapshot, as of its last log row.
    n: int
    seq: int
    version: int
    pending: int


#: An execution's Head, by id. The store that owns it keeps it, and forgets an execution's
#: when anything but a checkpoint writes it; a checkpoint takes it out before writing, and
#: puts the new one in only if the execution goes on running.
Heads = dict[str, Head]
#: The most executions a store remembers (one per running execution; more means leftovers of
#: runs that stopped without finishing, which are dropped).
_MAX_HEADS = 4096


def _remember(heads: Heads, execution_id: str, head: Head) -> None:
    if len(heads) >= _MAX_HEADS:
        heads.clear()
    heads[execution_id] = head


# -- operations (conn is inside the transaction the store opened) ----------------------------


def create(
    conn: sqlite3.Connection, new: NewExecution, definition: str | None, heads: Heads
) -> ExecutionRecord:
    """Insert the execution, and its definition unless ``definition`` is ``None`` (the store
    knows the definitions table has it: nothing ever deletes one)."""
    row = new.row
    state = dict(new.state)
    root_position = state.pop(ROOT_POSITION, None)
    marks = ", ".join("?" * (len(rows.EXECUTION_COLUMNS) + 1))
    values = rows.values_of(row)
    try:
        num = conn.execute(
            f"INSERT INTO executions ({_EXEC_COLUMNS}, root_pos) VALUES ({marks})",
            (*values, root_position),
        ).lastrowid
    except sqlite3.IntegrityError as exc:
        if "executions.id" in str(exc):  # the UNIQUE id: the store rolls everything back
            raise already_exists(row.id) from None
        raise
    if definition is not None:
        conn.execute(
            "INSERT OR IGNORE INTO definitions (hash, source, created_at) VALUES (?, ?, ?)",
            (row.definition_hash, definition, row.created_at),
        )
    if num is None or num > _MAX_NUM:
        raise StoreError(
            "the SQLite store has numbered 2**31 executions, the most it can; copy the "
            "executions you need to a new store"
        )
    _upsert(conn, "variables", row.id, new.variables)
    _upsert(conn, "state", row.id, list(state.items()))
    if row.status == _RUNNING and row.owner is not None:
        _remember(heads, row.id, Head(num, row.version, row.owner, 0, 0, 0, row.version, 0))
    # What load() would read back, without reading it.
    return rows.record_from_row(values, new.variables, new.state)


def load(conn: sqlite3.Connection, execution_id: str) -> ExecutionRecord | None:
    found = conn.execute(
        f"SELECT {_LOAD_COLUMNS}, root_pos, num, snap_n FROM executions WHERE id = ?",
        (execution_id,),
    ).fetchone()
    if found is None:
        return None
    variables = conn.execute(
        "SELECT name, value FROM variables WHERE execution_id = ?", (execution_id,)
    ).fetchall()
    state = conn.execute(
        "SELECT key, value FROM state WHERE execution_id = ?", (execution_id,)
    ).fetchall()
    root_position, num, snap_n = found[-3:]
    if root_position is not None:
        state.append((ROOT_POSITION, root_position))
    record = rows.record_from_row(found[:-3], variables, state)
    replayed = _replay(conn, num, snap_n)
    if replayed is not None:
        record.position = replayed.position
        record.version, record.updated_at = replayed.version, replayed.updated_at
        for values, changed in (
            (record.variables, replayed.variables),
            (record.state, replayed.state),
        ):
            for name, text in changed.items():
                if text is None:
                    values.pop(name, None)
                else:
                    values[name] = json.loads(text)
    return record


def load_definition(conn: sqlite3.Connection, definition_hash: str) -> str | None:
    found = conn.execute(
        "SELECT source FROM definitions WHERE hash = ?", (definition_hash,)
    ).fetchone()
    return None if found is None else str(found[0])


def checkpoint(conn: sqlite3.Connection, cp: CheckpointRow, heads: Heads) -> int:
    """Append the checkpoint to the log when the log has room (its status, lease, output, halt,
    error and wake-up time, if it changes them, go to the executions row in the same
    transaction); otherwise bring the snapshot up to date and write the checkpoint there.

    A checkpoint that ends or halts the run is appended even past the limits: the snapshot
    would be brought up to date for nothing (no step follows; a claim brings it up to date
    before the next one), and it is usually the largest write of the run.

    A step's checkpoint (running on, no lease, status or field to change) is appended where
    ``heads`` says the log ends, without reading it first, when that is still so.
    """
    changes = _changes_json(cp)
    head = heads.pop(cp.execution_id, None)
    if head is not None and _plain(cp, head):
        version = _append_after(conn, cp, changes, head, heads)
        if version is not None:
            return version
    return _checkpoint_read(conn, cp, changes, heads)


def append(conn: sqlite3.Connection, cp: CheckpointRow, heads: Heads) -> int | None:
    """:func:`checkpoint` as one statement, outside a transaction (the statement is one), for a
    step's checkpoint of at most one entry where ``heads`` says its log ends; ``None``, having
    written nothing, when that cannot be: :func:`checkpoint` then writes it."""
    head = heads.get(cp.execution_id)
    if head is None or len(cp.entries) > 1 or not _plain(cp, head):
        return None
    del heads[cp.execution_id]
    return _append_after(conn, cp, _changes_json(cp), head, heads)


def _plain(cp: CheckpointRow, head: Head) -> bool:
    """A step's checkpoint by the owner ``head`` knows: it changes no column of the executions
    row (no status, lease or field)."""
    return (
        cp.status == _RUNNING
        and cp.lease_expires_at is None
        and not cp.fields
        and head.owner == cp.owner
    )


def _append_after(
    conn: sqlite3.Connection, cp: CheckpointRow, changes: str, head: Head, heads: Heads
) -> int | None:
    """Append the checkpoint after the log row ``head`` remembers; ``None``, having written
    nothing, if the snapshot is due or the execution is not as remembered."""
    count = max(len(cp.entries), 1)
    pending = head.pending + len(changes)
    n = head.n
    if n - head.snap_n + count > SNAPSHOT_ROWS or pending > SNAPSHOT_BYTES or n + count > _MAX_ROWS:
        return None
    version = head.version + 1
    seq = head.seq + len(cp.entries)
    key = (head.num << _ROW_BITS) + n + count
    still = (head.num, cp.execution_id, cp.owner, head.row_version)
    last = (version, cp.now, pending, changes)
    try:
        if cp.entries:
            values = (key, seq, *rows.values_of(cp.entries[-1]), *last, *still)
            appended = conn.execute(_APPEND_JOURNAL, values).rowcount
        else:
            appended = conn.execute(_APPEND_CHANGES, (key, seq, *last, *still)).rowcount
    except sqlite3.IntegrityError:
        return None  # the key is taken: someone else appended (the statement wrote nothing)
    if appended != 1:
        return None
    if count > 1:
        first = key - count
        conn.executemany(
            _INSERT_ENTRY,
            [
                (first + i, seq - count + i, *rows.values_of(entry))
                for i, entry in enumerate(cp.entries[:-1], start=1)
            ],
        )
    heads[cp.execution_id] = Head(
        head.num, head.row_version, head.owner, head.snap_n, n + count, seq, version, pending
    )
    return version


def _checkpoint_read(
    conn: sqlite3.Connection, cp: CheckpointRow, changes: str, heads: Heads
) -> int:
    """:func:`checkpoint`, reading the owner and the end of the log first."""
    found = conn.execute(_HEAD, (cp.execution_id,)).fetchone()
    if found is None or found[0] != cp.owner:
        raise lease_lost(cp.execution_id, cp.owner, found and (found[0], found[1]))
    *_, row_version, num, last_seq, snap_n, head, head_seq, head_version, pending = found
    base = num << _ROW_BITS
    n, seq = (head - base, head_seq) if head is not None else (snap_n, last_seq)
    version = head_version if head is not None else row_version
    if head is None:
        pending = 0
    count = max(len(cp.entries), 1)
    pending += len(changes)
    running = cp.status == _RUNNING
    if (n - snap_n + count > SNAPSHOT_ROWS or pending > SNAPSHOT_BYTES) and running:
        _settle(conn, cp.execution_id)
        return _checkpoint_snapshot(conn, cp, heads)
    _check_room(cp.execution_id, n + count)
    columns = _row_changes(cp, found[:4])
    if "output" in columns:
        _output_at(columns, cp, base + n + count)
    if columns:
        conn.execute(_update_sql(tuple(columns)), (*columns.values(), num))
    version += 1
    last = (version, cp.now, pending, changes)
    key = base + n
    if not cp.entries:
        conn.execute(_INSERT_CHANGES, (key + 1, seq, *last))
    elif len(cp.entries) == 1:
        conn.execute(_INSERT_JOURNAL, (key + 1, seq + 1, *rows.values_of(cp.entries[0]), *last))
    else:
        conn.executemany(
            _INSERT_ENTRY,
            [
                (key + i, seq + i, *rows.values_of(entry))
                for i, entry in enumerate(cp.entries[:-1], start=1)
            ],
        )
        conn.execute(
            _INSERT_JOURNAL, (key + count, seq + count, *rows.values_of(cp.entries[-1]), *last)
        )
    if running:
        head_now = Head(
            num, row_version, cp.owner, snap_n, n + count, seq + len(cp.entries), version, pending
        )
        _remember(heads, cp.execution_id, head_now)
    return int(version)


def _row_changes(cp: CheckpointRow, stored: tuple[Any, ...]) -> dict[str, Any]:
    """The executions columns outside the snapshot that a journaled checkpoint changes: status,
    owner and lease (only if they change: two of them are indexed), output, halt, error and the
    wake-up time (if the checkpoint sets them)."""
    columns = rows.checkpoint_columns(cp, stored)
    owner, status, lease, _ = stored
    for name in ("position", "version", "updated_at"):  # the log's, until the next snapshot
        del columns[name]
    for name, value in (("status", status), ("owner", owner), ("lease_expires_at", lease)):
        if columns[name] == value:
            del columns[name]
    return columns


def _checkpoint_snapshot(conn: sqlite3.Connection, cp: CheckpointRow, heads: Heads) -> int:
    """A checkpoint written into the snapshot (which the log has no changes past)."""
    eid = cp.execution_id
    found = conn.execute(_CHECKED, (eid,)).fetchone()
    columns = rows.checkpoint_columns(cp, found and found[:4])
    _, status, lease, _, num, last_seq, snap_n = found
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
            columns["root_pos"] = None
        if keys:
            conn.executemany(_DELETE["state"], keys)
    if cp.set_variables:
        _upsert(conn, "variables", eid, cp.set_variables)
    if cp.set_state:
        others = [(key, value) for key, value in cp.set_state if key != ROOT_POSITION]
        if len(others) < len(cp.set_state):
            columns["root_pos"] = dict(cp.set_state)[ROOT_POSITION]
        _upsert(conn, "state", eid, others)
    if cp.entries:
        columns["snap_n"], columns["last_seq"] = _append_entries(
            conn, eid, num, snap_n, last_seq, cp.entries
        )
    if "output" in columns:
        _output_at(columns, cp, (num << _ROW_BITS) + columns.get("snap_n", snap_n))
    conn.execute(_update_sql(tuple(columns)), (*columns.values(), num))
    version = int(columns["version"])
    if cp.status == _RUNNING:
        snap_n = columns.get("snap_n", snap_n)
        last_seq = columns.get("last_seq", last_seq)
        head = Head(num, version, cp.owner, snap_n, snap_n, last_seq, version, 0)
        _remember(heads, cp.execution_id, head)
    return version


def claim(
    conn: sqlite3.Connection,
    execution_id: str,
    owner: str,
    lease_expires_at: float,
    expected_version: int,
    now: float,
) -> ExecutionRecord | None:
    _settle(conn, execution_id)
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
    _settle(conn, change.execution_id)
    found = conn.execute(
        "SELECT num, snap_n, last_seq FROM executions WHERE id = ? AND version = ?",
        (change.execution_id, change.expected_version),
    ).fetchone()
    if found is None:
        return False
    num, snap_n, last_seq = found
    if change.entry is not None:
        snap_n, last_seq = _append_entries(
            conn, change.execution_id, num, snap_n, last_seq, [change.entry]
        )
    conn.execute(
        "UPDATE executions SET status = ?, error = ?, owner = NULL, lease_expires_at = NULL,"
        " version = version + 1, updated_at = ?, snap_n = ?, last_seq = ? WHERE num = ?",
        (change.status, change.error, change.now, snap_n, last_seq, num),
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
    first = found[0] << _ROW_BITS
    rows_found = conn.execute(
        f"SELECT seq, {_ENTRY_COLUMNS} FROM log WHERE key BETWEEN ? AND ?"
        " AND action IS NOT NULL ORDER BY key",
        (first, first + _MAX_ROWS),
    )
    return [rows.entry_from_row(execution_id, seq, values) for seq, *values in rows_found]


def find(conn: sqlite3.Connection, query: FindRow) -> list[ExecutionSummary]:
    used = query.given()
    where = " AND ".join(f"x.{name} = ?" for name in used) or "1"
    found = conn.execute(
        f"{_SUMMARY_SELECT} WHERE {where} ORDER BY x.created_at DESC, x.id DESC LIMIT ? OFFSET ?",
        (*used.values(), query.limit, query.offset),
    )
    return [rows.summary_from_row(row) for row in found]


def find_due(conn: sqlite3.Connection, now: float, limit: int) -> list[ExecutionSummary]:
    # Three OR terms, each served by its (status, time) index.
    found = conn.execute(
        f"{_SUMMARY_SELECT}"
        " WHERE (x.status = 'running' AND x.lease_expires_at <= :now)"
        " OR (x.status IN ('pending', 'running', 'halted') AND x.wake_at <= :now)"
        " OR (x.status IN ('pending', 'running', 'halted') AND x.deadline <= :now)"
        " ORDER BY x.created_at, x.id LIMIT :limit",
        {"now": now, "limit": limit},
    )
    return [rows.summary_from_row(row) for row in found]


def delete(conn: sqlite3.Connection, execution_id: str) -> bool:
    found = conn.execute("SELECT num FROM executions WHERE id = ?", (execution_id,)).fetchone()
    if found is None:
        return False
    first = found[0] << _ROW_BITS
    conn.execute("DELETE FROM log WHERE key BETWEEN ? AND ?", (first, first + _MAX_ROWS))
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


def _append_entries(
    conn: sqlite3.Connection, eid: str, num: int, n: int, seq: int, new: list[EntryRow]
) -> tuple[int, int]:
    """Append the entries as log rows after row ``n`` and entry ``seq``; return both, updated."""
    _check_room(eid, n + len(new))
    key = (num << _ROW_BITS) + n
    if len(new) == 1:
        conn.execute(_INSERT_ENTRY, (key + 1, seq + 1, *rows.values_of(new[0])))
    else:
        conn.executemany(
            _INSERT_ENTRY,
            [(key + i, seq + i, *rows.values_of(row)) for i, row in enumerate(new, start=1)],
        )
    return n + len(new), seq + len(new)


def _output_at(columns: dict[str, Any], cp: CheckpointRow, last_key: int) -> None:
    """Write the output the checkpoint sets as a reference to its last entry's (the log row
    ``last_key``) when that entry output the same long text, not a second time."""
    text = columns["output"]
    last = cp.entries[-1].output if cp.entries else None
    if text is not None and last is not None and len(text) >= _SHARED_TEXT and text == last:
        columns["output"] = None
        columns["output_at"] = last_key
    else:
        columns["output_at"] = None


def _check_room(execution_id: str, rows_needed: int) -> None:
    if rows_needed > _MAX_ROWS:
        raise StoreError(
            f"execution {execution_id} has {_MAX_ROWS} audit entries and checkpoints in the "
            "SQLite store, the most one execution can hold; nothing more was written. Run the "
            "rest of the work as a new execution (or as child workflows, which have their own).",
            execution_id=execution_id,
        )


def _changes_json(cp: CheckpointRow) -> str:
    """What a journaled checkpoint changes, as JSON text made of the encoded values.

    A value of at least :data:`_SHARED_TEXT` characters whose text is part of the row's entry
    output (an ``assign`` outputs what it sets, a ``call`` what its variable receives) is kept
    as the [start, end) of that text in the output, not a second time.
    """
    output = cp.entries[-1].output if cp.entries else None
    parts = [f'{{"p":{cp.position}']
    if cp.delete_variables:
        parts.append(f',"dv":{_json_names(cp.delete_variables)}')
    if cp.set_variables:
        parts.append(_json_values("v", cp.set_variables, output))
    if cp.delete_state:
        parts.append(f',"ds":{_json_names(cp.delete_state)}')
    if cp.set_state:
        parts.append(_json_values("s", cp.set_state, output))
    parts.append("}")
    return "".join(parts)


#: The shortest value text that _changes_json() looks for in the entry output.
_SHARED_TEXT = 64
#: The longest changes that _settle() leaves in the log.
_KEPT_CHANGES = 512


def _json_values(field: str, pairs: list[tuple[str, str]], output: str | None) -> str:
    # Each value as a JSON string holding its JSON text: bringing the snapshot up to date then
    # stores that text as it is, without decoding and encoding it again.
    inline = []
    shared = []
    for name, text in pairs:
        start = -1
        if output is not None and len(text) >= _SHARED_TEXT:
            # The end step's result is its whole output: no search (costly for long text).
            start = 0 if text is output or text == output else output.find(text)
        if start >= 0:
            shared.append(f"{_json_name(name)}:[{start},{start + len(text)}]")
        else:
            inline.append(f"{_json_name(name)}:{_json_text(text)}")
    found = f',"{field}":{{{",".join(inline)}}}' if inline else ""
    return found + (f',"{field}o":{{{",".join(shared)}}}' if shared else "")


def _values(changes: dict[str, Any], field: str, output: str | None) -> dict[str, str]:
    """The (name, JSON text) of the values a journal row sets, from _json_values()."""
    values: dict[str, str] = changes.get(field, {})
    shared = changes.get(f"{field}o")
    if shared:
        assert output is not None
        values.update((name, output[start:end]) for name, (start, end) in shared.items())
    return values


def _json_names(names: list[str]) -> str:
    return "[" + ",".join(map(_json_name, names)) + "]"


# Names may hold any character (lone surrogates too): escaped to ASCII, so they round-trip.
# Values are JSON text that encode() made valid UTF-8: kept as they are.
_json_name = json.encoder.encode_basestring_ascii
_json_text = json.encoder.encode_basestring


class _Replayed(NamedTuple):
    """What the log rows past an execution's snapshot change, all applied in order: the last
    position, version and time of change, and the variables and state keys they set (their
    JSON text) or delete (``None``)."""

    position: Any
    version: int
    updated_at: float
    variables: dict[str, str | None]
    state: dict[str, str | None]


def _replay(conn: sqlite3.Connection, num: int, snap_n: int) -> _Replayed | None:
    """The changes of the execution's log rows past the snapshot; ``None`` when there are
    none."""
    base = num << _ROW_BITS
    journal = conn.execute(
        "SELECT version, updated_at, delta, output FROM log WHERE key > ? AND key <= ?"
        " AND delta IS NOT NULL ORDER BY key",
        (base + snap_n, base + _MAX_ROWS),
    ).fetchall()
    if not journal:
        return None
    variables: dict[str, str | None] = {}
    state: dict[str, str | None] = {}
    position: Any = None
    for _, _, delta, output in journal:
        changes = json.loads(delta)
        position = changes["p"]
        variables.update(dict.fromkeys(changes.get("dv", ())))
        variables.update(_values(changes, "v", output))
        state.update(dict.fromkeys(changes.get("ds", ())))
        state.update(_values(changes, "s", output))
    version, updated_at, _, _ = journal[-1]
    return _Replayed(position, int(version), float(updated_at), variables, state)


def _settle(conn: sqlite3.Connection, execution_id: str) -> None:
    """Bring the execution's snapshot up to date with its log: apply the changes of the rows
    past it to the variables, the state and the executions row, and clear the long ones."""
    found = conn.execute(
        "SELECT num, snap_n FROM executions WHERE id = ?", (execution_id,)
    ).fetchone()
    if found is None:
        return
    num, snap_n = found
    replayed = _replay(conn, num, snap_n)
    if replayed is None:
        return
    variables, state = replayed.variables, replayed.state
    deleted = [(execution_id, name) for name, value in variables.items() if value is None]
    if deleted:
        conn.executemany(_DELETE["variables"], deleted)
    _upsert(
        conn, "variables", execution_id, [(k, v) for k, v in variables.items() if v is not None]
    )
    columns: dict[str, Any] = {}
    if ROOT_POSITION in state:
        columns["root_pos"] = state.pop(ROOT_POSITION)
    deleted = [(execution_id, key) for key, value in state.items() if value is None]
    if deleted:
        conn.executemany(_DELETE["state"], deleted)
    _upsert(conn, "state", execution_id, [(k, v) for k, v in state.items() if v is not None])
    base = num << _ROW_BITS
    head, seq = conn.execute(
        "SELECT key, seq FROM log WHERE key > ? AND key <= ? ORDER BY key DESC LIMIT 1",
        (base + snap_n, base + _MAX_ROWS),
    ).fetchone()
    # The rows at or before snap_n are only the audit from now on. Their copies of the changes
    # are cleared where that saves space worth a page write: most are a position and a few
    # short values (long values that the output holds are kept as offsets into it).
    conn.execute(
        "UPDATE log SET delta = NULL WHERE key > ? AND key <= ? AND length(delta) > ?",
        (base + snap_n, head, _KEPT_CHANGES),
    )
    columns.update(
        position=json_encode(replayed.position, "the position"),
        version=replayed.version,
        updated_at=replayed.updated_at,
        snap_n=head - base,
        last_seq=seq,
    )
    conn.execute(_update_sql(tuple(columns)), (*columns.values(), num))
