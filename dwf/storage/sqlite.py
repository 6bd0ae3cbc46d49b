"""The SQLite store: one file, safe for several processes on one machine.

Each store owns one connection of the stdlib ``sqlite3`` and one worker thread. A call runs on the
event loop's thread when that is cheap and safe (``io="auto"``, the default): nothing else is
queued for the connection, the previous call took under :data:`INLINE_LIMIT` seconds, and the
write lock is free (a busy database is never waited for on the loop). Otherwise, and always with
``io="thread"``, it runs on the worker thread and the loop stays free. Handing a call to a thread
costs two thread wake-ups, which on small virtual machines is as much as the disk sync itself.

The database is in WAL mode, every write is one ``BEGIN IMMEDIATE`` transaction, and
``synchronous`` defaults to ``FULL``: a committed checkpoint survives a power cut. The connection
is opened (and the schema migrated) by the first call, on the worker thread, so a bad file is
reported there.

URL: ``sqlite:///relative/dwf.db`` or ``sqlite:////absolute/dwf.db`` (as in SQLAlchemy), with the
options ``?synchronous=full|normal|off|extra``, ``?busy_timeout=10`` (seconds; ``500ms`` also
works) and ``?io=auto|thread``. A plain path ending in ``.db``, ``.sqlite`` or ``.sqlite3`` is
accepted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
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

__all__ = ["INLINE_LIMIT", "SQLITE_SUFFIXES", "SQLiteStore", "sqlite_url"]

T = TypeVar("T")

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SYNCHRONOUS = ("full", "normal", "off", "extra")
_IO = ("auto", "thread")
#: With ``io="auto"``, a call runs on the event loop's thread only if the previous call took
#: less than this many seconds (a slow disk sends the next calls to the worker thread).
INLINE_LIMIT = 0.002
#: A run of calls on the loop's thread yields to the loop once this many seconds have passed, so
#: that other tasks (timeouts, the lease renewer, other requests) are not starved.
_YIELD_EVERY = 0.005


class SQLiteStore:
    """A :class:`~dwf.storage.base.Store` in one SQLite file.

    Args:
        path: The database file; a relative path is resolved against the current directory now.
            Missing parent directories are created when the store opens. ``":memory:"`` gives a
            private in-memory database.
        synchronous: SQLite's ``synchronous`` setting: ``"full"`` (default, durable),
            ``"normal"`` (may lose the last commits on power loss, never corrupts) or ``"off"``.
        busy_timeout: Seconds a write waits for another process's transaction before failing
            (always on the worker thread).
        io: ``"auto"`` (default) runs a call on the event loop's thread when nothing else is
            queued, the previous call was fast and the database is not locked; ``"thread"``
            runs every call on the worker thread.
        clock: Returns the current Unix time; used for ``created_at`` and ``updated_at``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "full",
        busy_timeout: float = 10.0,
        io: str = "auto",
        clock: Callable[[], float] = time.time,
    ) -> None:
        raw = os.fspath(path)
        self.path = raw if raw == ":memory:" else os.path.abspath(os.path.expanduser(raw))
        self.synchronous = _check_synchronous(synchronous)
        if busy_timeout < 0:
            raise ConfigurationError(f"busy_timeout must be >= 0 seconds, got {busy_timeout}")
        self.busy_timeout = float(busy_timeout)
        if io not in _IO:
            raise ConfigurationError(f"io must be one of {', '.join(_IO)}, got {io!r}")
        self.io = io
        self.url = sqlite_url(
            self.path, synchronous=self.synchronous, busy_timeout=self.busy_timeout, io=io
        )
        self._clock = clock
        self._worker = _Worker("dwf-sqlite")
        # Stops the thread of a store dropped without close(), and at exit lets the job in
        # flight finish, as a ThreadPoolExecutor would.
        weakref.finalize(self, self._worker.stop)
        # Used by one thread at a time: the worker's, or the loop's while _Worker.hold() is held.
        self._conn: sqlite3.Connection | None = None
        self._waits = True  # whether the connection's busy handler waits busy_timeout
        self._slow = False  # the previous call took INLINE_LIMIT or more
        self._yielded_at = time.monotonic()
        # Where the log of each execution this store runs ends (see ops.Head): only the
        # worker's job or the inline call in progress changes it, one at a time.
        self._heads: ops.Heads = {}
        # The definitions this store wrote or saw written: never deleted, not written again.
        self._stored_definitions: set[str] = set()
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
            elif name == "io":
                if value.lower() not in _IO:
                    raise bad_option("io", value, url, "auto or thread")
                options["io"] = value.lower()
            else:
                raise ConfigurationError(
                    f"unknown SQLite store option {name!r} in {url!r}; "
                    "known options: synchronous, busy_timeout, io",
                    url=url,
                )
        return cls(path, clock=clock, **options)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- the protocol ------------------------------------------------------------------------

    async def create(self, record: ExecutionRecord, definition: str) -> ExecutionRecord:
        """See :meth:`dwf.storage.base.Store.create`."""
        new = rows.new_execution(record, self._clock)
        digest = new.row.definition_hash
        text = None if digest in self._stored_definitions else definition
        try:
            created = await self._write(ops.create, new, text, self._heads)
        except BaseException:
            self._heads.pop(new.row.id, None)  # perhaps remembered, then rolled back
            raise
        self._stored_definitions.add(digest)
        return created

    async def load(self, execution_id: str) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.load`."""
        return await self._read(ops.load, execution_id)

    async def load_definition(self, definition_hash: str) -> str | None:
        """See :meth:`dwf.storage.base.Store.load_definition`."""
        return await self._read(ops.load_definition, definition_hash)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        """See :meth:`dwf.storage.base.Store.checkpoint`. Values are encoded on the calling
        thread, before anything is written."""
        row = rows.checkpoint_row(checkpoint, self._clock)
        try:
            return await self._submit(self._checkpoint, row)
        except BaseException:
            self._heads.pop(row.execution_id, None)  # perhaps remembered, then rolled back
            raise

    async def claim(
        self,
        execution_id: str,
        *,
        owner: str,
        lease_expires_at: float,
        expected_version: int,
    ) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.claim`."""
        self._heads.pop(execution_id, None)
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
        self._heads.pop(execution_id, None)
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
        self._heads.pop(execution_id, None)
        return await self._write(ops.delete, execution_id)

    async def close(self) -> None:
        """See :meth:`dwf.storage.base.Store.close`; stops the worker thread."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._worker.call(self._close_connection)
        finally:
            self._worker.stop(wait=False)

    # -- the worker thread -------------------------------------------------------------------

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(self._in_transaction, "BEGIN IMMEDIATE", fn, args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        # A deferred transaction: the reads inside it see one snapshot.
        return await self._submit(self._in_transaction, "BEGIN", fn, args)

    async def _submit(self, job: Callable[..., T], *args: Any) -> T:
        """Run ``job(*args, inline)``: on the loop's thread (``inline``) or the worker's."""
        if self._closed:
            raise StoreError(f"the SQLite store {self.path!r} is closed", path=self.path)
        if self.io == "auto" and not self._slow and self._conn is not None and self._worker.hold():
            # Nothing is queued or running on the worker: run here, now, in submission order.
            try:
                result = self._timed(job, *args, True)
                ran = True
            except _Busy:
                ran = False  # locked by another connection: wait for it on the worker thread
            finally:
                self._worker.release()
            if ran:
                now = time.monotonic()
                if now - self._yielded_at >= _YIELD_EVERY:  # let other tasks run now and then
                    self._yielded_at = now
                    await asyncio.sleep(0)
                return result
        return await self._worker.call(self._timed, job, *args, False)

    def _timed(self, job: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        try:
            return job(*args)
        finally:
            self._slow = time.perf_counter() - started >= INLINE_LIMIT

    def _checkpoint(self, row: rows.CheckpointRow, inline: bool) -> int:
        """A step's checkpoint is one INSERT where the store remembers the log ends (see
        ops.append): that statement alone, without BEGIN and COMMIT around it."""
        conn = self._connection()
        try:
            self._wait_if(not inline)
            version = ops.append(conn, row, self._heads)
        except sqlite3.Error as exc:
            if inline and _is_busy(exc):
                raise _Busy from exc
            raise self._error(exc) from exc
        if version is not None:
            return version
        return self._in_transaction("BEGIN IMMEDIATE", ops.checkpoint, (row, self._heads), inline)

    def _wait_if(self, waits: bool) -> None:
        """Wait for locks (off the event loop) or not (on it): set the busy handler if it is
        not set so."""
        if self._waits != waits:
            self._connection().execute(f"PRAGMA busy_timeout = {self._busy_ms() if waits else 0}")
            self._waits = waits

    def _in_transaction(
        self, begin: str, fn: Callable[..., T], args: tuple[Any, ...], inline: bool
    ) -> T:
        """Run ``fn`` in one transaction. ``inline`` (on the event loop's thread): never wait for
        a lock; raise :class:`_Busy` instead, having written nothing."""
        conn = self._connection()
        try:
            self._wait_if(not inline)
            conn.execute(begin)
            try:
                result = fn(conn, *args)
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
        except sqlite3.Error as exc:
            if inline and _is_busy(exc):
                raise _Busy from exc
            raise self._error(exc) from exc
        return result

    def _busy_ms(self) -> int:
        return round(self.busy_timeout * 1000)

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
            # Not tied to one thread: the loop's thread uses it too, never at the same time.
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._waits = True
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
        if _is_busy(exc):
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


class _Busy(Exception):
    """A call on the event loop's thread found the database locked; nothing was written."""


def _is_busy(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc)


class _Worker:
    """One thread that runs jobs in order and hands each result back to its caller's loop.

    It waits for work on a pipe (a byte written when it is idle) rather than on the queue of a
    ``ThreadPoolExecutor``: on the 2-CPU virtual machine of the benchmarks an empty round trip
    took about 15 µs instead of about 45 µs, and a durable step 10-20 µs less.

    :meth:`hold` lets the caller run a job itself, on its own thread, when the worker has
    nothing queued or running; the worker takes no job until :meth:`release`.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: deque[_Job | None] = deque()
        # guards _jobs appends, _idle, _busy, _held, _thread and _pipe
        self._lock = threading.Lock()
        self._idle = False  # the thread waits, or is about to, for one byte on the pipe
        self._busy = False  # the thread is running a job
        self._held = False  # a caller runs a job itself (see hold())
        self._thread: threading.Thread | None = None
        self._pipe: tuple[int, int] | None = None
        self._stopped = False

    def hold(self) -> bool:
        """Reserve the worker's resources for the calling thread, if nothing is queued or
        running; then :meth:`release` must follow."""
        with self._lock:
            if self._jobs or self._busy or self._held or self._stopped:
                return False
            self._held = True
            return True

    def release(self) -> None:
        """End a :meth:`hold`; the jobs queued meanwhile start."""
        with self._lock:
            self._held = False
            wake = bool(self._jobs) and self._idle
            if wake:
                self._idle = False
            pipe = self._pipe
        if wake:
            assert pipe is not None
            os.write(pipe[1], b"\0")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the thread, after the jobs before it; the event loop stays free.
        Cancelling the caller does not stop a job that started."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put((loop, future, fn, args))
        return await future

    def stop(self, *, wait: bool = True) -> None:
        """Let the thread finish the jobs it has, then end; ``wait`` waits for that."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            thread = self._thread
        if thread is None:
            return
        self._put(None)
        if wait and thread is not threading.current_thread():
            thread.join()

    def _put(self, job: _Job | None) -> None:
        with self._lock:
            if self._stopped and job is not None:
                raise RuntimeError(f"the {self._name} thread is stopped")
            if self._thread is None:
                self._pipe = os.pipe()
                self._thread = threading.Thread(
                    target=_serve, args=(self,), name=self._name, daemon=True
                )
                self._thread.start()
            self._jobs.append(job)
            wake, self._idle = self._idle, False
            pipe = self._pipe
        if wake:
            assert pipe is not None
            os.write(pipe[1], b"\0")  # at most one byte is ever unread: never blocks

    def _finished(self) -> None:
        """The thread is done with its job (on the thread)."""
        with self._lock:
            self._busy = False

    def _next(self) -> _Job | None:
        """The next job, waiting for one (on the thread); marks the thread busy with it."""
        while True:
            with self._lock:
                self._busy = False
                if self._jobs and not self._held:
                    self._busy = True
                    return self._jobs.popleft()
                self._idle = True
                pipe = self._pipe
            assert pipe is not None
            os.read(pipe[0], 1)


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _serve(worker: _Worker) -> None:
    """The worker thread. It holds the worker, never the store, so a store dropped without
    close() can be freed and its finalizer can stop the thread."""
    while (job := worker._next()) is not None:
        loop, future, fn, args = job
        # A job cancelled before it started is skipped, as a ThreadPoolExecutor does.
        if not future.cancelled():
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the caller, as a ThreadPoolExecutor does
                error = exc
            worker._finished()  # before the caller wakes up: it may hold() the worker at once
            with contextlib.suppress(RuntimeError):  # the caller's loop closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result, error)
            del result, error
        del job, loop, future, fn, args  # hold nothing of it while waiting for the next job
    assert worker._pipe is not None
    for fd in worker._pipe:
        os.close(fd)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


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


def sqlite_url(
    path: str, *, synchronous: str = "full", busy_timeout: float = 10.0, io: str = "auto"
) -> str:
    """The ``sqlite:///`` URL that opens the file at ``path`` (made absolute) with these options."""
    if path != ":memory:":
        path = os.path.abspath(path)
    quoted = path.replace("%", "%25").replace("?", "%3F").replace("\\", "/")
    query = []
    if synchronous != "full":
        query.append(f"synchronous={synchronous}")
    if busy_timeout != 10.0:
        query.append(f"busy_timeout={busy_timeout:g}")
    if io != "auto":
        query.append(f"io={io}")
    return f"sqlite:///{quoted}" + (f"?{'&'.join(query)}" if query else "")
