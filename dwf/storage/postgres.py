"""The PostgreSQL store: several processes on several machines share one database.

psycopg 3 with an async connection pool. Every write is one transaction; a checkpoint is one
statement (one round trip): it updates the execution row where the owner matches, and only if
it did, writes the variables and state keys that changed and the new audit entries, so its cost
does not grow with the size of the state. Claims are compare-and-set updates on ``version``.

URL: ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``) with dwf's options
``?schema=NAME`` (the schema dwf's tables live in, created when missing; default: the first
schema of the search path, normally ``public``), ``?pool_max=10`` (most connections the pool
opens) and ``?pool_timeout=30`` (seconds a call waits for a free connection). Every other option
goes to libpq (``sslmode``, ``application_name``, ``connect_timeout``, which defaults to 10).

The pool checks a connection before handing it out only when the server sent something on it
while it was idle (it ended the session), so a healthy checkout costs no round trip.

The first call connects, creates or migrates the schema (under an advisory lock, so processes
opening a new database at once are safe) and opens the pool.
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dwf.errors import ConfigurationError, StoreError
from dwf.storage import _postgres_sql as sql
from dwf.storage import _rows as rows
from dwf.storage._loops import ConnectionPerLoop
from dwf.storage._options import (
    join_query,
    positive_seconds,
    redact,
    set_default,
    split_query,
    whole_number,
)
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
        self.pool_max = whole_number(options, "pool_max", 10, self.url)
        self.pool_timeout = positive_seconds(options, "pool_timeout", 30.0, self.url)
        self._connect_timeout = float(str(params.get("connect_timeout")))
        self._pools: ConnectionPerLoop[AsyncConnectionPool] = ConnectionPerLoop(
            AsyncConnectionPool.close
        )
        # The definitions this store wrote or saw written: never deleted, not written again.
        self._stored_definitions: set[str] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    # -- the protocol ------------------------------------------------------------------------

    async def create(self, record: ExecutionRecord, definition: str) -> ExecutionRecord:
        """See :meth:`dwf.storage.base.Store.create`."""
        new = rows.new_execution(record, self._clock)
        digest = new.row.definition_hash
        text = None if digest in self._stored_definitions else definition
        created = await self._run(sql.create, new, text)
        self._stored_definitions.add(digest)
        return created

    async def load(self, execution_id: str) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.load`."""
        return await self._run(sql.load, execution_id)

    async def load_definition(self, definition_hash: str) -> str | None:
        """See :meth:`dwf.storage.base.Store.load_definition`."""
        return await self._run(sql.load_definition, definition_hash)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        """See :meth:`dwf.storage.base.Store.checkpoint`; values are encoded before the
        transaction starts."""
        return await self._run(sql.checkpoint, rows.checkpoint_row(checkpoint, self._clock))

    async def claim(
        self,
        execution_id: str,
        *,
        owner: str,
        lease_expires_at: float,
        expected_version: int,
    ) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.claim`."""
        return await self._run(
            sql.claim, execution_id, owner, lease_expires_at, expected_version, self._clock()
        )

    async def renew(self, execution_id: str, *, owner: str, lease_expires_at: float) -> bool:
        """See :meth:`dwf.storage.base.Store.renew`."""
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
        """See :meth:`dwf.storage.base.Store.set_status`."""
        change = rows.status_row(execution_id, expected_version, status, error, entry, self._clock)
        return await self._run(sql.set_status, change)

    async def request_cancel(self, execution_id: str) -> bool:
        """See :meth:`dwf.storage.base.Store.request_cancel`."""
        return await self._run(sql.request_cancel, execution_id)

    async def entries(self, execution_id: str) -> list[AuditEntry]:
        """See :meth:`dwf.storage.base.Store.entries`."""
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
        """See :meth:`dwf.storage.base.Store.find`."""
        query = rows.find_row(workflow_id, status, parent_id, limit, offset)
        return await self._run(sql.find, query)

    async def find_due(self, *, now: float, limit: int = 100) -> list[ExecutionSummary]:
        """See :meth:`dwf.storage.base.Store.find_due`."""
        return await self._run(sql.find_due, now, max(limit, 0))

    async def delete(self, execution_id: str) -> bool:
        """See :meth:`dwf.storage.base.Store.delete`."""
        return await self._run(sql.delete, execution_id)

    async def close(self) -> None:
        """See :meth:`dwf.storage.base.Store.close`; closes the pool."""
        self._closed = True
        await self._pools.close()

    # -- connections -------------------------------------------------------------------------

    async def _run(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._closed:
            raise StoreError(f"the PostgreSQL store {self.url} is closed", url=self.url)
        pool = await self._pools.get(self._connect)
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
            check=_check_if_readable,
            configure=_configure,
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


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Prepared statements (psycopg prepares a statement after a few uses) run a plan made once,
    rather than being planned again for their values: planning a checkpoint costs more than
    running it, and dwf's statements look rows up by key, where the values don't change the
    best plan."""
    await conn.execute("SET plan_cache_mode = force_generic_plan")


async def _check_if_readable(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check on checkout, without a round trip for a healthy connection.

    An idle connection has nothing to read unless the server sent something, which for dwf (no
    LISTEN) means it ended the session (a restart, an admin's terminate) or reported an error.
    Only then does the full check (an empty query) run, and fail, so the pool replaces the
    connection instead of handing out a dead one.
    """
    if _readable(conn):
        await AsyncConnectionPool.check_connection(conn)


def _readable(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Data (or end of file) waits on the connection's socket; true when that is unknown."""
    try:
        ready, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(ready)


def _shown(url: str) -> str:
    """The URL without its password (in the user part or the query), fit for messages."""
    return re.sub(r"([?&]password=)[^&]*", r"\1***", redact(url))


def _parse_url(url: str, shown: str) -> tuple[str, dict[str, str]]:
    """The libpq connection string, and dwf's own options, from a store URL."""
    parts, options, libpq = split_query(url, _OPTIONS)
    set_default(libpq, "connect_timeout", _DEFAULT_CONNECT_TIMEOUT)
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
        set_default(libpq, "options", extra)
    try:
        conninfo = make_conninfo(join_query(parts, libpq))
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(
            f"bad PostgreSQL store URL {shown!r}: {str(exc).strip()}. dwf's options are "
            f"{', '.join(_OPTIONS)}; the others go to libpq.",
            url=shown,
        ) from None
    return conninfo, options
