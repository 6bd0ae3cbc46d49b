"""The SQL of :class:`dwf.storage.postgres.PostgresStore`: schema, migrations and one coroutine per
operation. Each takes a connection from the store's pool (in autocommit mode) and opens the
transaction it needs; values arrive already encoded as JSON text.

JSON values live in ``json`` columns, not ``jsonb``: ``json`` keeps the text it is given, so every
value comes back exactly as written. ``jsonb`` would print ``1e300`` as a 301-digit integer, drop
the sign of ``-0.0``, reorder keys, and refuse ``"\\u0000"`` and lone surrogates, all of which
dwf must round-trip. Nothing in dwf queries inside these values, so ``jsonb``'s indexing would
not be used anyway; the ``json`` operators (``->``, ``->>``) still work for ad-hoc SQL.

A checkpoint, the write of every step, is one statement in autocommit (see
:func:`_checkpoint_sql`): one round trip and one commit, whatever the number of variables. Other
writes with several statements run in pipeline mode where libpq supports it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import sql as pgsql

from dwf.errors import StoreError
from dwf.storage import _rows as rows
from dwf.storage._errors import already_exists, lease_lost, newer_schema
from dwf.storage._rows import (
    CheckpointRow,
    EntryRow,
    FindRow,
    NewExecution,
    StatusRow,
    values_of,
)
from dwf.storage.base import AuditEntry, ExecutionRecord, ExecutionSummary, Status

Connection = psycopg.AsyncConnection[Any]

# Each migration is a list of statements, applied in order in one transaction; never edit a
# released one, append a new one. schema_version holds one row per applied migration. Ids and
# keys use the "C" collation so that listings sort bytewise, as in the other stores.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE definitions (
            hash TEXT COLLATE "C" PRIMARY KEY,
            source TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE executions (
            id TEXT COLLATE "C" PRIMARY KEY,
            workflow_id TEXT COLLATE "C" NOT NULL,
            definition_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            input JSON NOT NULL,
            position JSON NOT NULL,
            output JSON,
            halt JSON,
            error JSON,
            parent_id TEXT COLLATE "C",
            parent_step TEXT,
            owner TEXT,
            lease_expires_at DOUBLE PRECISION,
            deadline DOUBLE PRECISION,
            wake_at DOUBLE PRECISION,
            cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
            version BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX executions_by_created ON executions (created_at, id)",
        "CREATE INDEX executions_by_workflow ON executions (workflow_id, created_at, id)",
        "CREATE INDEX executions_by_status ON executions (status, created_at, id)",
        "CREATE INDEX executions_by_parent ON executions (parent_id, created_at, id)"
        " WHERE parent_id IS NOT NULL",
        # find_due: partial indexes hold only executions that can be due.
        "CREATE INDEX executions_due_lease ON executions (lease_expires_at)"
        " WHERE status = 'running' AND lease_expires_at IS NOT NULL",
        "CREATE INDEX executions_due_wake ON executions (wake_at)"
        " WHERE status IN ('pending', 'running', 'halted') AND wake_at IS NOT NULL",
        "CREATE INDEX executions_due_deadline ON executions (deadline)"
        " WHERE status IN ('pending', 'running', 'halted') AND deadline IS NOT NULL",
        """CREATE TABLE variables (
            execution_id TEXT COLLATE "C" NOT NULL,
            name TEXT COLLATE "C" NOT NULL,
            value JSON NOT NULL,
            PRIMARY KEY (execution_id, name)
        )""",
        """CREATE TABLE state (
            execution_id TEXT COLLATE "C" NOT NULL,
            key TEXT COLLATE "C" NOT NULL,
            value JSON NOT NULL,
            PRIMARY KEY (execution_id, key)
        )""",
        """CREATE TABLE entries (
            execution_id TEXT COLLATE "C" NOT NULL,
            seq BIGINT NOT NULL,
            step_path TEXT NOT NULL,
            step_id TEXT NOT NULL,
            step_type TEXT NOT NULL,
            action TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION NOT NULL,
            output JSON,
            error JSON,
            PRIMARY KEY (execution_id, seq)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
TABLES = ("definitions", "executions", "variables", "state", "entries")


_EXEC_COLUMNS = ", ".join(rows.EXECUTION_COLUMNS)
_SUMMARY_COLUMNS = ", ".join(rows.SUMMARY_COLUMNS)
# The record and its two maps in one statement, so one snapshot.
_LOAD_COLUMNS = (
    ", ".join(f"e.{name}" for name in rows.EXECUTION_COLUMNS)
    + ", (SELECT COALESCE(json_object_agg(v.name, v.value), '{}') FROM variables v"
    " WHERE v.execution_id = e.id)"
    + ", (SELECT COALESCE(json_object_agg(s.key, s.value), '{}') FROM state s"
    " WHERE s.execution_id = e.id)"
)
_ENTRY_COLUMNS = ", ".join(rows.ENTRY_COLUMNS)
# The entries, from the three JSON arrays of _entry_params() (their plain columns, outputs and
# errors), numbered after the execution's last; the checkpoint gates it on its owner check.
_INSERT_ENTRIES = (
    f"INSERT INTO entries (execution_id, seq, {_ENTRY_COLUMNS})"
    " SELECT %(id)s, last.seq + t.ord, t.m->>0, t.m->>1, t.m->>2, t.m->>3, (t.m->>4)::int,"
    " (t.m->>5)::float8, (t.m->>6)::float8,"
    " CASE WHEN json_typeof(t.o) = 'null' THEN NULL ELSE t.o END,"
    " CASE WHEN json_typeof(t.e) = 'null' THEN NULL ELSE t.e END"
    " FROM (SELECT COALESCE(MAX(seq), 0) AS seq FROM entries WHERE execution_id = %(id)s)"
    " AS last, ROWS FROM (json_array_elements(%(ent)s::json),"
    " json_array_elements(%(ent_out)s::json), json_array_elements(%(ent_err)s::json))"
    " WITH ORDINALITY AS t(m, o, e, ord)"
)


# How often a checkpoint is retried after its audit entries collided with those of a concurrent
# checkpoint by the same owner.
_SEQ_RETRIES = 3


@functools.cache
def _checkpoint_sql(fields: tuple[str, ...], writes: tuple[str, ...]) -> str:
    """The checkpoint as one statement: the optional ``fields`` it sets, and the ``writes``
    (names of :data:`_CHECKPOINT_WRITES`) it has rows for.

    The ``UPDATE`` of the execution row is the owner check and takes the row lock; every other
    write is gated on its result, so a non-owner writes nothing. All of it runs as one
    statement in autocommit: atomic and one round trip. Writes with no rows are left out, so
    a statement has only the parts it needs; its text depends only on which parts, so psycopg
    prepares it after a few uses. The last ``SELECT`` returns the new version, or no row when
    the owner did not match (then :func:`checkpoint` reads who holds it, for the message).
    """
    sets = "".join(
        f" {name} = %(f_{name})s::json,"
        if name in rows.JSON_COLUMNS
        else f" {name} = %(f_{name})s,"
        for name in fields
    )
    ctes = "".join(f", {name} AS ({_CHECKPOINT_WRITES[name]})" for name in writes)
    return (
        "WITH upd AS (UPDATE executions SET status = %(status)s, position = %(position)s::json,"
        " owner = %(owner)s,"
        " lease_expires_at = CASE WHEN %(running)s THEN COALESCE(%(lease)s, lease_expires_at) END,"
        f"{sets} version = version + 1, updated_at = %(now)s"
        f" WHERE id = %(id)s AND owner = %(checked_owner)s RETURNING version){ctes}"
        " SELECT version FROM upd"
    )


def _gated_upsert(table: str, key: str, prefix: str) -> str:
    # The names and the encoded values come as two JSON arrays (see _names_json and
    # _values_json): two text parameters, which the driver sends as they are, where arrays of
    # text cost it more than the statement. json_array_elements() hands each value over as it
    # is (a value may hold "\u0000", which a JSON value can and a PostgreSQL text cannot).
    return (
        f"INSERT INTO {table} (execution_id, {key}, value) SELECT %(id)s, t.name, t.value"
        f" FROM ROWS FROM (json_array_elements_text(%({prefix}_names)s::json),"
        f" json_array_elements(%({prefix}_values)s::json)) AS t(name, value)"
        f" WHERE {_OWNED} ON CONFLICT (execution_id, {key}) DO UPDATE SET value = excluded.value"
    )


# Every write of a checkpoint but the execution row, gated on the row's update (``upd``).
_OWNED = "EXISTS (SELECT FROM upd)"
_CHECKPOINT_WRITES = {
    "del_v": "DELETE FROM variables WHERE execution_id = %(id)s"
    f" AND name = ANY(%(del_v)s::text[]) AND {_OWNED}",
    "del_s": "DELETE FROM state WHERE execution_id = %(id)s"
    f" AND key = ANY(%(del_s)s::text[]) AND {_OWNED}",
    "set_v": _gated_upsert("variables", "name", "set_v"),
    "set_s": _gated_upsert("state", "key", "set_s"),
    "ent": f"{_INSERT_ENTRIES} WHERE {_OWNED}",
}


def _entry_params(entries: list[EntryRow]) -> dict[str, str]:
    """The entries as the three JSON arrays of the "ent" write."""
    return {
        "ent": "["
        + ",".join(
            f"[{_text(e.step_path)},{_text(e.step_id)},{_text(e.step_type)},{_text(e.action)},"
            f"{int(e.attempt)},{float(e.started_at)!r},{float(e.finished_at)!r}]"
            for e in entries
        )
        + "]",
        "ent_out": _values_json([e.output or "null" for e in entries]),
        "ent_err": _values_json([e.error or "null" for e in entries]),
    }


def _names_json(names: list[str]) -> str:
    return "[" + ",".join(map(_text, names)) + "]"


def _values_json(texts: list[str]) -> str:
    """JSON texts as the elements of one JSON array."""
    return "[" + ",".join(texts) + "]"


# Names may hold any character (lone surrogates too): escaped to ASCII, as JSON allows.
_text = json.encoder.encode_basestring_ascii


@contextlib.asynccontextmanager
async def _batched(conn: Connection) -> AsyncIterator[None]:
    """Pipeline mode where libpq has it: statements go out together, results come back at the
    next fetch or at the end. The same statements, one at a time, elsewhere."""
    if psycopg.Pipeline.is_supported():
        async with conn.pipeline():
            yield
    else:
        yield


# -- migrations ------------------------------------------------------------------------------


async def migrate(conn: Connection, where: str) -> None:
    """Bring the schema up to :data:`SCHEMA_VERSION` (no-op when current).

    Concurrent openers are safe: the migration runs under a transaction-level advisory lock
    keyed on the search path, and checks the version again once it holds the lock.

    Raises:
        StoreError: The schema belongs to a newer dwf, or holds tables dwf did not create.
    """
    if await _schema_version(conn, where) == SCHEMA_VERSION:
        return  # the common case takes no lock
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('dwf.migrate'),"
            " hashtext(current_setting('search_path')))"
        )
        schema, exists = await _target_schema(conn)
        if not exists:
            await conn.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
        found = await _schema_version(conn, where)
        if found == 0:
            cursor = await conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = %s AND table_name = ANY(%s::text[])",
                (schema, list(TABLES)),
            )
            others = sorted(str(row[0]) for row in await cursor.fetchall())
            if others:
                raise StoreError(
                    f"the PostgreSQL schema {schema!r} at {where} already holds tables named "
                    f"like dwf's ({', '.join(others)}) but no dwf schema_version table. Give dwf "
                    "its own schema with ?schema=dwf in the store URL.",
                    schema=schema,
                )
            await conn.execute(
                "CREATE TABLE schema_version"
                " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version VALUES (%s, %s)", (version, time.time()))


async def _target_schema(conn: Connection) -> tuple[str, bool]:
    """The schema dwf's tables are (or will be) in: the first of the search path that exists,
    else the first named; and whether it exists."""
    cursor = await conn.execute("SELECT current_schemas(false), current_setting('search_path')")
    row = await cursor.fetchone()
    assert row is not None
    existing, path = row
    if existing:
        return str(existing[0]), True
    first = str(path).split(",")[0].strip().strip('"')
    return ("public" if not first or first == "$user" else first), False


async def _schema_version(conn: Connection, where: str) -> int:
    cursor = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cursor.fetchone()
    found = 0
    if row is not None and row[0]:
        cursor = await conn.execute("SELECT MAX(version) FROM schema_version")
        got = await cursor.fetchone()
        found = int(got[0] or 0) if got else 0
    if found > SCHEMA_VERSION:
        raise newer_schema(f"the PostgreSQL store at {where}", found, SCHEMA_VERSION)
    return found


# -- operations ------------------------------------------------------------------------------


async def create(conn: Connection, new: NewExecution, definition: str | None) -> ExecutionRecord:
    """One statement in autocommit (see :func:`_create_sql`): the execution, and its
    definition (unless ``definition`` is ``None``: the store knows the table has it), variables
    and state, all or nothing."""
    row = new.row
    params: dict[str, Any] = {
        f"x_{name}": value
        for name, value in zip(rows.EXECUTION_COLUMNS, values_of(row), strict=True)
    }
    if definition is not None:
        params["source"] = definition
    for name, pairs in (("v", new.variables), ("s", new.state)):
        if pairs:
            params[f"{name}_names"] = _names_json([key for key, _ in pairs])
            params[f"{name}_values"] = _values_json([text for _, text in pairs])
    query = _create_sql(definition is not None, bool(new.variables), bool(new.state))
    cursor = await conn.execute(query, params)
    if await cursor.fetchone() is None:
        raise already_exists(row.id)
    # What load() would read back, without reading it (json columns keep the text as written).
    return rows.record_from_row(values_of(row), new.variables, new.state)


@functools.cache
def _create_sql(definition: bool, variables: bool, state: bool) -> str:
    """The creation as one statement: the execution row is inserted unless its id exists,
    and every other write is gated on that insert, so a second creation writes nothing."""
    values = ", ".join(
        f"%(x_{name})s::json" if name in rows.JSON_COLUMNS else f"%(x_{name})s"
        for name in rows.EXECUTION_COLUMNS
    )
    ctes = [
        f"ins AS (INSERT INTO executions ({_EXEC_COLUMNS}) VALUES ({values})"
        " ON CONFLICT (id) DO NOTHING RETURNING id)"
    ]
    if definition:
        ctes.append(
            "def AS (INSERT INTO definitions (hash, source, created_at)"
            " SELECT %(x_definition_hash)s, %(source)s, %(x_created_at)s FROM ins"
            " ON CONFLICT (hash) DO NOTHING)"
        )
    for name, table, key, wanted in (
        ("v", "variables", "name", variables),
        ("s", "state", "key", state),
    ):
        if wanted:
            ctes.append(
                f"{name} AS (INSERT INTO {table} (execution_id, {key}, value)"
                " SELECT ins.id, t.name, t.value FROM ins,"
                f" ROWS FROM (json_array_elements_text(%({name}_names)s::json),"
                f" json_array_elements(%({name}_values)s::json)) AS t(name, value)"
                f" ON CONFLICT (execution_id, {key}) DO UPDATE SET value = excluded.value)"
            )
    return f"WITH {', '.join(ctes)} SELECT id FROM ins"


async def load(conn: Connection, execution_id: str) -> ExecutionRecord | None:
    cursor = await conn.execute(
        f"SELECT {_LOAD_COLUMNS} FROM executions e WHERE e.id = %s", (execution_id,)
    )
    found = await cursor.fetchone()
    return None if found is None else _record(found)


async def load_definition(conn: Connection, definition_hash: str) -> str | None:
    cursor = await conn.execute(
        "SELECT source FROM definitions WHERE hash = %s", (definition_hash,)
    )
    found = await cursor.fetchone()
    return None if found is None else str(found[0])


async def checkpoint(conn: Connection, cp: CheckpointRow) -> int:
    """One statement in autocommit, so one round trip: see :func:`_checkpoint_sql`.

    Raises:
        LeaseLost: The execution is missing or not owned by ``cp.owner``; nothing was written.
    """
    running = cp.status == Status.RUNNING.value
    params: dict[str, Any] = {
        "id": cp.execution_id,
        "checked_owner": cp.owner,
        "status": cp.status,
        "position": cp.position,
        "owner": cp.owner if running else None,
        "running": running,
        "lease": cp.lease_expires_at,
        "now": cp.now,
        **{f"f_{name}": value for name, value in cp.fields.items()},
    }
    # A name both deleted and set ends up set (one statement cannot write a row twice).
    set_names = {name for name, _ in cp.set_variables}
    set_keys = {key for key, _ in cp.set_state}
    writes: list[str] = []
    for name, values in (
        ("del_v", [name for name in cp.delete_variables if name not in set_names]),
        ("del_s", [key for key in cp.delete_state if key not in set_keys]),
    ):
        if values:
            params[name] = values
            writes.append(name)
    for name, pairs in (("set_v", cp.set_variables), ("set_s", cp.set_state)):
        if pairs:
            params[f"{name}_names"] = _names_json([key for key, _ in pairs])
            params[f"{name}_values"] = _values_json([text for _, text in pairs])
            writes.append(name)
    if cp.entries:
        params.update(_entry_params(cp.entries))
        writes.append("ent")
    query = _checkpoint_sql(tuple(cp.fields), tuple(writes))
    for attempt in range(_SEQ_RETRIES + 1):
        try:
            cursor = await conn.execute(query, params)
            break
        except psycopg.errors.UniqueViolation as exc:
            # Another checkpoint of the same owner (a parallel branch) committed entries after
            # this statement's snapshot was taken: seq collided and nothing was written. A new
            # statement sees them.
            if exc.diag.constraint_name != "entries_pkey" or attempt == _SEQ_RETRIES:
                raise
    found = await cursor.fetchone()
    if found is None:  # not the owner: who is, for the message (nothing was written)
        cursor = await conn.execute(
            "SELECT owner, status FROM executions WHERE id = %s", (cp.execution_id,)
        )
        holder = await cursor.fetchone()
        raise lease_lost(cp.execution_id, cp.owner, None if holder is None else tuple(holder))
    return int(found[0])


async def claim(
    conn: Connection,
    execution_id: str,
    owner: str,
    lease_expires_at: float,
    expected_version: int,
    now: float,
) -> ExecutionRecord | None:
    # One statement: the update and the read of the claimed record see one snapshot.
    cursor = await conn.execute(
        "WITH e AS (UPDATE executions SET status = 'running', owner = %s, lease_expires_at = %s,"
        " version = version + 1, updated_at = %s WHERE id = %s AND version = %s RETURNING *)"
        f" SELECT {_LOAD_COLUMNS} FROM e",
        (owner, lease_expires_at, now, execution_id, expected_version),
    )
    found = await cursor.fetchone()
    return None if found is None else _record(found)


async def renew(conn: Connection, execution_id: str, owner: str, lease_expires_at: float) -> bool:
    cursor = await conn.execute(
        "UPDATE executions SET lease_expires_at = %s"
        " WHERE id = %s AND owner = %s AND status = 'running'",
        (lease_expires_at, execution_id, owner),
    )
    return cursor.rowcount == 1


async def set_status(conn: Connection, change: StatusRow) -> bool:
    eid = change.execution_id
    async with _batched(conn), conn.transaction():
        cursor = await conn.execute(
            "UPDATE executions SET status = %s, error = %s::json, owner = NULL,"
            " lease_expires_at = NULL, version = version + 1, updated_at = %s"
            " WHERE id = %s AND version = %s RETURNING id",
            (change.status, change.error, change.now, eid, change.expected_version),
        )
        if await cursor.fetchone() is None:
            return False
        if change.entry is not None:
            await _append_entries(conn, eid, [change.entry])
    return True


async def request_cancel(conn: Connection, execution_id: str) -> bool:
    cursor = await conn.execute(
        "UPDATE executions SET cancel_requested = TRUE WHERE id = %s", (execution_id,)
    )
    return cursor.rowcount == 1


async def entries(conn: Connection, execution_id: str) -> list[AuditEntry]:
    cursor = await conn.execute(
        f"SELECT seq, {_ENTRY_COLUMNS} FROM entries WHERE execution_id = %s ORDER BY seq",
        (execution_id,),
    )
    return [  # json columns arrive decoded
        rows.entry_from_row(execution_id, seq, values, decoded=True)
        for seq, *values in await cursor.fetchall()
    ]


async def find(conn: Connection, query: FindRow) -> list[ExecutionSummary]:
    used = query.given()
    where = " AND ".join(f"{name} = %s" for name in used) or "TRUE"
    cursor = await conn.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM executions WHERE {where}"
        " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
        (*used.values(), query.limit, query.offset),
    )
    return [rows.summary_from_row(row) for row in await cursor.fetchall()]


async def find_due(conn: Connection, now: float, limit: int) -> list[ExecutionSummary]:
    # Three OR terms, each served by its partial index.
    cursor = await conn.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM executions"
        " WHERE (status = 'running' AND lease_expires_at <= %(now)s)"
        " OR (status IN ('pending', 'running', 'halted') AND wake_at <= %(now)s)"
        " OR (status IN ('pending', 'running', 'halted') AND deadline <= %(now)s)"
        " ORDER BY created_at, id LIMIT %(limit)s",
        {"now": now, "limit": limit},
    )
    return [rows.summary_from_row(row) for row in await cursor.fetchall()]


async def delete(conn: Connection, execution_id: str) -> bool:
    async with _batched(conn), conn.transaction():
        # The execution row first: it waits for a checkpoint in flight, and a later one finds
        # no row and writes nothing, so no variable, state or entry is left behind.
        cursor = await conn.execute(
            "DELETE FROM executions WHERE id = %s RETURNING id", (execution_id,)
        )
        for table in ("variables", "state", "entries"):
            await conn.execute(f"DELETE FROM {table} WHERE execution_id = %s", (execution_id,))
        existed = await cursor.fetchone() is not None
    return existed


# -- helpers ---------------------------------------------------------------------------------


async def _append_entries(conn: Connection, eid: str, new: list[EntryRow]) -> None:
    if new:
        await conn.execute(_INSERT_ENTRIES, {"id": eid, **_entry_params(new)})


def _record(row: tuple[Any, ...]) -> ExecutionRecord:
    """An execution from a ``_LOAD_COLUMNS`` row (json columns arrive decoded)."""
    *columns, variables, state = row
    return rows.record_from_row(columns, variables.items(), state.items(), decoded=True)
