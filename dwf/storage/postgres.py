"""The PostgreSQL store: several processes on several machines share one database.

psycopg 3 with an async connection pool. Every write is one transaction; a checkpoint locks the
execution row (``SELECT ... FOR UPDATE``), checks the owner, then writes only the variables and
state keys that changed, the new audit entries and the new version, so its cost does not grow
with the size of the state. Claims are compare-and-set updates on ``version``.

URL: ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``) with dwf's options
``?schema=NAME`` (the schema dwf's tables live in, created when missing; default: the first
schema of the search path, normally ``public``), ``?pool_max=10`` (most connections the pool
opens) and ``?pool_timeout=30`` (seconds a call waits for a free connection). Every other option
goes to libpq (``sslmode``, ``application_name``, ``connect_timeout``, which defaults to 10).

The first call connects, creates or migrates the schema (under an advisory lock, so processes
opening a new database at once are safe) and opens the pool.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dwf.errors import ConfigurationError, StoreError
from dwf.storage import _postgres_sql as sql
from dwf.storage import _redact
from dwf.storage._json import encode, encode_nullable, require_name
from dwf.storage.base import (
    AuditEntry,
    Checkpoint,
    ExecutionRecord,
    ExecutionSummary,
    Status,
)

__all__ = ["PostgresStore"]

T = TypeVar("T")

_OPTIONS = ("schema", "pool_max", "pool_timeout")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DEFAULT_CONNECT_TIMEOUT = "10"
# admin_shutdown, crash_shutdown, cannot_connect_now: the server ended or refused the session.
_SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})


class PostgresStore:
    """A :class:`~dwf.storage.base.Store` in a PostgreSQL database.

    Args:
        url: ``postgresql://user:password@host:port/dbname`` with optional ``?schema=``,
            ``?pool_max=`` and ``?pool_timeout=`` (see the module docstring) and libpq options.
        clock: Returns the current Unix time; used for ``created_at`` and ``updated_at``.

    Raises:
        ConfigurationError: The URL is malformed or has a bad option.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = _shown(url)
        self._clock = clock
        self._conninfo, options = _parse_url(url, self.url)
        params = conninfo_to_dict(self._conninfo)
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        self.where = f"{host}:{params.get('port') or 5432}/{params.get('dbname') or ''}"
        self.schema: str | None = options.get("schema")
        self.pool_max = _int_option(options, "pool_max", 10, self.url)
        self.pool_timeout = _seconds_option(options, "pool_timeout", 30.0, self.url)
        self._connect_timeout = float(str(params.get("connect_timeout")))
        self._pool: AsyncConnectionPool | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._closer: AsyncGenerator[None, None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    # -- the protocol ------------------------------------------------------------------------

    async def create(self, record: ExecutionRecord, definition: str) -> ExecutionRecord:
        """Insert a new execution; see :meth:`dwf.storage.base.Store.create`."""
        created_at = record.created_at or self._clock()
        row = sql.ExecutionRow(
            id=record.id,
            workflow_id=record.workflow_id,
            definition_hash=record.definition_hash,
            status=Status(record.status).value,
            input=encode(record.input, "the execution input", "input"),
            position=encode(record.position, "the position", "position"),
            output=encode_nullable(record.output, "the execution output", "output"),
            halt=encode_nullable(record.halt, "the halt", "halt"),
            error=encode_nullable(record.error, "the error", "error"),
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
        variables = _encode_map(record.variables, "variable")
        state = _encode_map(record.state, "state key")
        return await self._run(sql.create, row, variables, state, definition)

    async def load(self, execution_id: str) -> ExecutionRecord | None:
        """The execution with its variables and state, or ``None``."""
        return await self._run(sql.load, execution_id)

    async def load_definition(self, definition_hash: str) -> str | None:
        """The definition text stored under that hash, or ``None``."""
        return await self._run(sql.load_definition, definition_hash)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        """Apply the checkpoint in one transaction; see :meth:`dwf.storage.base.Store.checkpoint`.

        Only the named variables and state keys are written (one statement each for the
        deletes and the upserts), so the cost does not depend on how many exist. Values are
        encoded before the transaction starts: a bad value writes nothing.
        """
        cp = checkpoint
        changes = sql.CheckpointRow(
            execution_id=cp.execution_id,
            owner=cp.owner,
            status=Status(cp.status).value,
            position=encode(cp.position, "the position", "position"),
            set_variables=_encode_map(cp.set_variables, "variable"),
            delete_variables=[require_name(n, "variable") for n in cp.delete_variables],
            set_state=_encode_map(cp.set_state, "state key"),
            delete_state=[require_name(n, "state key") for n in cp.delete_state],
            entries=[_encode_entry(e) for e in cp.entries],
            fields={},
            lease_expires_at=cp.lease_expires_at,
            now=self._clock(),
        )
        if cp.set_output:
            changes.fields["output"] = encode_nullable(cp.output, "the execution output", "output")
        if cp.set_halt:
            changes.fields["halt"] = encode_nullable(cp.halt, "the halt", "halt")
        if cp.set_error:
            changes.fields["error"] = encode_nullable(cp.error, "the error", "error")
        if cp.set_wake_at:
            changes.fields["wake_at"] = cp.wake_at
        return await self._run(sql.checkpoint, changes)

    async def claim(
        self,
        execution_id: str,
        *,
        owner: str,
        lease_expires_at: float,
        expected_version: int,
    ) -> ExecutionRecord | None:
        """Compare-and-set ownership on ``version``; the full record, or ``None`` if it lost."""
        return await self._run(
            sql.claim, execution_id, owner, lease_expires_at, expected_version, self._clock()
        )

    async def renew(self, execution_id: str, *, owner: str, lease_expires_at: float) -> bool:
        """Extend the lease if ``owner`` still runs the execution (version unchanged)."""
        return await self._run(sql.renew, execution_id, owner, lease_expires_at)

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
        return await self._run(
            sql.set_status,
            execution_id,
            expected_version,
            Status(status).value,
            encode_nullable(error, "the error", "error"),
            None if entry is None else _encode_entry(entry),
            self._clock(),
        )

    async def request_cancel(self, execution_id: str) -> bool:
        """Flag the execution for cancellation (version unchanged); False if it is unknown."""
        return await self._run(sql.request_cancel, execution_id)

    async def entries(self, execution_id: str) -> list[AuditEntry]:
        """The execution's audit entries in ``seq`` order."""
        return await self._run(sql.entries, execution_id)

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
        status_text = None if status is None else Status(status).value
        return await self._run(
            sql.find, workflow_id, status_text, parent_id, max(limit, 0), max(offset, 0)
        )

    async def find_due(self, *, now: float, limit: int = 100) -> list[ExecutionSummary]:
        """Executions whose lease expired or whose wake-up time or deadline passed, oldest first."""
        return await self._run(sql.find_due, now, max(limit, 0))

    async def delete(self, execution_id: str) -> bool:
        """Delete the execution, its variables, state and entries. True if it existed."""
        return await self._run(sql.delete, execution_id)

    async def close(self) -> None:
        """Close the pool; later calls raise StoreError."""
        self._closed = True
        closer, self._closer, self._pool = self._closer, None, None
        if closer is not None and self._pool_loop is asyncio.get_running_loop():
            await closer.aclose()

    # -- connections -------------------------------------------------------------------------

    async def _run(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        pool = await self._open_pool()
        try:
            async with pool.connection() as conn:
                return await operation(conn, *args)
        except PoolTimeout as exc:
            raise StoreError(
                f"no connection to the PostgreSQL store at {self.where} within "
                f"{self.pool_timeout:g} s: the server is down or unreachable, or all "
                f"{self.pool_max} pooled connections are busy. Nothing was written. Retry, or "
                "raise ?pool_max= or ?pool_timeout= in the store URL.",
                where=self.where,
            ) from exc
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    async def _open_pool(self) -> AsyncConnectionPool:
        if self._closed:
            raise StoreError(f"the PostgreSQL store {self.url} is closed", url=self.url)
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool_loop is loop:
            return self._pool
        if self._opening is None or self._pool_loop is not loop:
            # A pool belongs to one event loop: asyncio.run() per call (the *_sync wrappers)
            # gets a fresh one; the old one was closed as that loop shut down.
            self._pool, self._closer = None, None
            self._pool_loop, self._opening = loop, asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                pool = await self._connect()
                self._closer = _close_with_the_loop(pool)
                await anext(self._closer)
                self._pool = pool
            return self._pool

    async def _connect(self) -> AsyncConnectionPool:
        """Migrate on a connection of its own (which also reports a bad address or password at
        once), then open the pool."""
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise self._error(exc, connecting=True) from exc
        try:
            await sql.migrate(conn, self.where)
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        finally:
            await conn.close()
        pool: AsyncConnectionPool = AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self.pool_max,
            open=False,
            timeout=self.pool_timeout,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,
            name=f"dwf {self.where}",
        )
        try:
            await pool.open(wait=True, timeout=max(self._connect_timeout, 1.0))
        except PoolTimeout as exc:
            await pool.close()
            raise StoreError(
                f"cannot open connections to the PostgreSQL store at {self.where} within "
                f"{self._connect_timeout:g} s. Check that the server is up and accepts "
                f"{self.pool_max} connections.",
                where=self.where,
            ) from exc
        return pool

    def _error(self, exc: psycopg.Error, *, connecting: bool = False) -> StoreError:
        """A StoreError that names the server (never the password) and says what to do."""
        text = str(exc).strip()
        facts = {"where": self.where, "sqlstate": exc.sqlstate}
        if connecting:
            return StoreError(
                f"cannot connect to the PostgreSQL store at {self.where}: {text}. Check that "
                "the server runs and the host, port, user, password and database in the store "
                "URL are right.",
                **facts,
            )
        state = exc.sqlstate or ""
        if not state or state.startswith("08") or state in _SERVER_GONE:
            return StoreError(
                f"lost the connection to the PostgreSQL store at {self.where}: {text}. The "
                "transaction was rolled back, unless the connection broke while committing; "
                "reload the execution and retry.",
                **facts,
            )
        if state.startswith("40"):  # deadlock, serialization failure
            return StoreError(
                f"the PostgreSQL store at {self.where} rolled the transaction back: {text}. "
                "Nothing was written; retry.",
                **facts,
            )
        if state == "42501":
            text += (
                ". The database user lacks a privilege dwf needs: creating its schema and tables "
                "on first use, then reading and writing them"
            )
        return StoreError(f"the PostgreSQL store at {self.where} failed: {text}", **facts)


async def _close_with_the_loop(pool: AsyncConnectionPool) -> AsyncGenerator[None, None]:
    """Waits until :meth:`PostgresStore.close`, or until the event loop shuts down its async
    generators (``asyncio.run`` does, before it closes the loop), then closes the pool while
    its loop still runs."""
    try:
        yield
    finally:
        await pool.close()


def _shown(url: str) -> str:
    """The URL without its password (in the user part or the query), fit for messages."""
    return re.sub(r"([?&]password=)[^&]*", r"\1***", _redact(url))


def _parse_url(url: str, shown: str) -> tuple[str, dict[str, str]]:
    """The libpq connection string, and dwf's own options, from a store URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {name: value for name, value in query if name in _OPTIONS}
    libpq = [(name, value) for name, value in query if name not in _OPTIONS]
    if not any(name == "connect_timeout" for name, _ in libpq):
        libpq.append(("connect_timeout", _DEFAULT_CONNECT_TIMEOUT))
    schema = options.get("schema")
    if schema is not None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(
                f"bad schema {schema!r} in the PostgreSQL store URL {shown!r}: use lowercase "
                "letters, digits and underscores, starting with a letter or underscore",
                url=shown,
            )
        extra = f"-c search_path={schema}"
        libpq = [(n, f"{v} {extra}") if n == "options" else (n, v) for n, v in libpq]
        if not any(name == "options" for name, _ in libpq):
            libpq.append(("options", extra))
    try:
        conninfo = make_conninfo(
            urlunsplit(parts._replace(query=urlencode(libpq, quote_via=quote)))
        )
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(
            f"bad PostgreSQL store URL {shown!r}: {str(exc).strip()}. dwf's options are "
            f"{', '.join(_OPTIONS)}; the others go to libpq.",
            url=shown,
        ) from None
    return conninfo, options


def _int_option(options: dict[str, str], name: str, default: int, shown: str) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(
            f"{name} in {shown!r} must be a whole number >= 1, got {raw!r}", url=shown
        )
    return value


def _seconds_option(options: dict[str, str], name: str, default: float, shown: str) -> float:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigurationError(
            f"{name} in {shown!r} must be a number of seconds > 0, got {raw!r}", url=shown
        )
    return value


def _encode_map(values: Any, kind: str) -> list[tuple[str, str]]:
    out = []
    for name, value in values.items():
        name = require_name(name, kind)
        out.append((name, encode(value, f"{kind} '{name}'", name)))
    return out


def _encode_entry(e: AuditEntry) -> sql.EntryRow:
    where = f"the entry of step {e.step_path!r}"
    return sql.EntryRow(
        step_path=e.step_path,
        step_id=e.step_id,
        step_type=e.step_type,
        action=e.action,
        attempt=e.attempt,
        started_at=e.started_at,
        finished_at=e.finished_at,
        output=encode_nullable(e.output, f"the output of {where}", "output"),
        error=encode_nullable(e.error, f"the error of {where}", "error"),
    )
