"""The SQLite store: one file, safe for several processes on one machine.

Each store runs the stdlib ``sqlite3`` on one dedicated worker thread, so the event loop never waits
on a disk sync. The database is in WAL mode, every write is one ``BEGIN IMMEDIATE`` transaction, and
``synchronous`` defaults to ``FULL``: a committed checkpoint survives a power cut. The connection is
opened (and the schema migrated) by the first call, so a bad file is reported there.

URL: ``sqlite:///relative/dwf.db`` or ``sqlite:////absolute/dwf.db`` (as in SQLAlchemy), with the
options ``?synchronous=full|normal|off|extra`` and ``?busy_timeout=10`` (seconds; ``500ms`` also
works). A plain path ending in ``.db``, ``.sqlite`` or ``.sqlite3`` is accepted too.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from dwf.errors import ConfigurationError, StoreError
from dwf.storage import _rows as rows
from dwf.storage import _sqlite_ops as ops
from dwf.storage._options import bad_option
from dwf.storage.base import (
    AuditEntry,
    Checkpoint,
    ExecutionRecord,
    ExecutionSummary,
    Status,
)

__all__ = ["SQLITE_SUFFIXES", "SQLiteStore", "sqlite_url"]

T = TypeVar("T")

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SYNCHRONOUS = ("full", "normal", "off", "extra")


class SQLiteStore:
    """A :class:`~dwf.storage.base.Store` in one SQLite file.

    Args:
        path: The database file; a relative path is resolved against the current directory now.
            Missing parent directories are created when the store opens. ``":memory:"`` gives a
            private in-memory database.
        synchronous: SQLite's ``synchronous`` setting: ``"full"`` (default, durable),
            ``"normal"`` (may lose the last commits on power loss, never corrupts) or ``"off"``.
        busy_timeout: Seconds a write waits for another process's transaction before failing.
        clock: Returns the current Unix time; used for ``created_at`` and ``updated_at``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "full",
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        raw = os.fspath(path)
        self.path = raw if raw == ":memory:" else os.path.abspath(os.path.expanduser(raw))
        self.synchronous = _check_synchronous(synchronous)
        if busy_timeout < 0:
            raise ConfigurationError(f"busy_timeout must be >= 0 seconds, got {busy_timeout}")
        self.busy_timeout = float(busy_timeout)
        self.url = sqlite_url(
            self.path, synchronous=self.synchronous, busy_timeout=self.busy_timeout
        )
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dwf-sqlite")
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> SQLiteStore:
        """Open the store a ``sqlite:///`` URL (or a plain ``.db`` path) names.

        Raises:
            ConfigurationError: The URL is malformed or has an unknown or bad option.
        """
        if url[:7].lower() == "sqlite:":
            if url[7:10] != "///":
                raise ConfigurationError(
                    f"bad SQLite store URL {url!r}: write three slashes before the path, "
                    "sqlite:///relative/dwf.db or sqlite:////absolute/dwf.db",
                    url=url,
                )
            raw_path, _, query = url[len("sqlite:///") :].partition("?")
            path = unquote(raw_path)
        else:
            path, _, query = url.partition("?")
        if not path:
            raise ConfigurationError(f"the SQLite store URL {url!r} has no file path", url=url)
        options: dict[str, Any] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name == "synchronous":
                options["synchronous"] = value
            elif name == "busy_timeout":
                options["busy_timeout"] = _parse_seconds(value, url)
            else:
                raise ConfigurationError(
                    f"unknown SQLite store option {name!r} in {url!r}; "
                    "known options: synchronous, busy_timeout",
                    url=url,
                )
        return cls(path, clock=clock, **options)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- the protocol ------------------------------------------------------------------------

    async def create(self, record: ExecutionRecord, definition: str) -> ExecutionRecord:
        """See :meth:`dwf.storage.base.Store.create`."""
        return await self._write(ops.create, rows.new_execution(record, self._clock), definition)

    async def load(self, execution_id: str) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.load`."""
        return await self._read(ops.load, execution_id)

    async def load_definition(self, definition_hash: str) -> str | None:
        """See :meth:`dwf.storage.base.Store.load_definition`."""
        return await self._read(ops.load_definition, definition_hash)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        """See :meth:`dwf.storage.base.Store.checkpoint`. Values are encoded on the calling
        thread, before anything is written."""
        return await self._write(ops.checkpoint, rows.checkpoint_row(checkpoint, self._clock))

    async def claim(
        self,
        execution_id: str,
        *,
        owner: str,
        lease_expires_at: float,
        expected_version: int,
    ) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.claim`."""
        return await self._write(
            ops.claim, execution_id, owner, lease_expires_at, expected_version, self._clock()
        )

    async def renew(self, execution_id: str, *, owner: str, lease_expires_at: float) -> bool:
        """See :meth:`dwf.storage.base.Store.renew`."""
        return await self._write(ops.renew, execution_id, owner, lease_expires_at)

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
        return await self._write(ops.set_status, change)

    async def request_cancel(self, execution_id: str) -> bool:
        """See :meth:`dwf.storage.base.Store.request_cancel`."""
        return await self._write(ops.request_cancel, execution_id)

    async def entries(self, execution_id: str) -> list[AuditEntry]:
        """See :meth:`dwf.storage.base.Store.entries`."""
        return await self._read(ops.entries, execution_id)

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
        return await self._read(ops.find, query)

    async def find_due(self, *, now: float, limit: int = 100) -> list[ExecutionSummary]:
        """See :meth:`dwf.storage.base.Store.find_due`."""
        return await self._read(ops.find_due, now, max(limit, 0))

    async def delete(self, execution_id: str) -> bool:
        """See :meth:`dwf.storage.base.Store.delete`."""
        return await self._write(ops.delete, execution_id)

    async def close(self) -> None:
        """See :meth:`dwf.storage.base.Store.close`; stops the worker thread."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close_connection)
        finally:
            self._executor.shutdown(wait=False)

    # -- the worker thread -------------------------------------------------------------------

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(self._in_transaction, "BEGIN IMMEDIATE", fn, args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        # A deferred transaction: the reads inside it see one snapshot.
        return await self._submit(self._in_transaction, "BEGIN", fn, args)

    async def _submit(self, job: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError(f"the SQLite store {self.path!r} is closed", path=self.path)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, job, *args)

    def _in_transaction(self, begin: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._connection()
        try:
            conn.execute(begin)
            try:
                result = fn(conn, *args)
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        return result

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory for the SQLite store {self.path!r}: {exc}. "
                    "Choose another --store or fix the permissions.",
                    path=self.path,
                ) from exc
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=True
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            self._prepare(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL and migrate. Several connections doing this to a new file at once can
        get SQLITE_BUSY without SQLite waiting (switching the journal mode does not call the
        busy handler), so retry within busy_timeout."""
        give_up = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                ops.migrate(conn, self.path)
                return
            except sqlite3.OperationalError as exc:
                busy = (getattr(exc, "sqlite_errorname", "") or "").startswith("SQLITE_BUSY")
                if not busy or time.monotonic() + pause > give_up:
                    raise
            time.sleep(pause)  # on the worker thread, never the event loop
            pause = min(pause * 2, 0.05)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _error(self, exc: sqlite3.Error) -> StoreError:
        """Turn a sqlite3 error into a StoreError that says what to do."""
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        path = self.path
        facts = {"path": path, "sqlite_error": text}
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
            return StoreError(
                f"the SQLite store {path!r} is locked: another process or connection held a write "
                f"transaction for longer than busy_timeout ({self.busy_timeout:g} s). Nothing was "
                "written. Retry when it finishes, stop the program holding the file, or raise "
                "the wait with ?busy_timeout=SECONDS in the store URL.",
                **facts,
            )
        if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            return StoreError(ops.not_a_store_message(path, text), **facts)
        if name.startswith("SQLITE_CANTOPEN"):
            return StoreError(
                f"cannot open the SQLite store {path!r}: {text}. Check that the path is a file "
                "you may write to, or choose another --store.",
                **facts,
            )
        if name.startswith("SQLITE_READONLY"):
            return StoreError(
                f"the SQLite store {path!r} is read-only: {text}. Fix the permissions of the "
                "file and its directory, or choose another --store.",
                **facts,
            )
        if name.startswith("SQLITE_FULL"):
            return StoreError(
                f"the disk holding the SQLite store {path!r} is full; nothing was written. "
                "Free some space and retry.",
                **facts,
            )
        return StoreError(f"the SQLite store {path!r} failed: {text}", **facts)


def _check_synchronous(value: str) -> str:
    lowered = value.lower()
    if lowered not in _SYNCHRONOUS:
        raise ConfigurationError(
            f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {value!r}",
        )
    return lowered


def _parse_seconds(text: str, url: str) -> float:
    raw = text.strip().lower()
    scale = 1.0
    if raw.endswith("ms"):
        raw, scale = raw[:-2], 0.001
    elif raw.endswith("s"):
        raw = raw[:-1]
    try:
        seconds = float(raw) * scale
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also rejects NaN
        raise bad_option("busy_timeout", text, url, "a number of seconds (10, 2.5, 500ms)")
    return seconds


def sqlite_url(path: str, *, synchronous: str = "full", busy_timeout: float = 10.0) -> str:
    """The ``sqlite:///`` URL that opens the file at ``path`` (made absolute) with these options."""
    if path != ":memory:":
        path = os.path.abspath(path)
    quoted = path.replace("%", "%25").replace("?", "%3F").replace("\\", "/")
    query = []
    if synchronous != "full":
        query.append(f"synchronous={synchronous}")
    if busy_timeout != 10.0:
        query.append(f"busy_timeout={busy_timeout:g}")
    return f"sqlite:///{quoted}" + (f"?{'&'.join(query)}" if query else "")
