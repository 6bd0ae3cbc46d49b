"""The SQLite store: the contract, plus files, processes, locks, schema versions and URLs."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from contract import (
    OWNER,
    StoreContract,
    check_sync_engine_round_trip,
    ending,
    make_entry,
    make_record,
    running,
    step,
)

import dwf.storage
from dwf.errors import ConfigurationError, InvalidTransition, LeaseLost, StoreError
from dwf.storage import MemoryStore, SQLiteStore, Store, default_store_url, open_store
from dwf.storage import _sqlite_ops as sqlite_ops
from dwf.storage import sqlite as sqlite_module
from dwf.storage._sqlite_ops import MIGRATIONS
from dwf.storage.base import ExecutionRecord, Status
from dwf.storage.sqlite import sqlite_url

REPO_ROOT = Path(dwf.storage.__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "dwf.db"


class TestSQLiteStore(StoreContract):
    @pytest.fixture(params=["auto", "thread"])
    async def store(self, db_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
        store = SQLiteStore(db_path, io=request.param)
        yield store
        await store.close()


def run_sql(path: Path, script: str) -> list[tuple[object, ...]]:
    """Run SQL on a separate connection, as another program would."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if script.lstrip().upper().startswith("SELECT"):
            return list(conn.execute(script))
        conn.executescript(script)
        return []
    finally:
        conn.close()


async def test_everything_survives_reopening_the_file(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await running(store, variables={"a": [1, 2.0]}, state={"k": "v"})
    await store.checkpoint(step(entries=[make_entry()], output={"x": 1}, set_output=True))
    before, entries = await store.load("ex-1"), await store.entries("ex-1")
    await store.close()

    reopened = SQLiteStore(db_path)
    assert await reopened.load("ex-1") == before
    assert await reopened.entries("ex-1") == entries
    assert await reopened.load_definition("hash-1") == "definition text"
    await reopened.close()
    assert run_sql(db_path, "SELECT * FROM pragma_journal_mode") == [("wal",)]
    assert run_sql(db_path, "SELECT version FROM schema_version") == [(1,), (2,), (3,), (4,)]


async def test_two_stores_on_one_file_race_claims_with_one_winner(db_path: Path) -> None:
    first, second = SQLiteStore(db_path), SQLiteStore(db_path)
    for n in range(5):
        created = await first.create(make_record(f"ex-{n}"), "d")
        results = await asyncio.gather(
            first.claim(f"ex-{n}", owner="first", lease_expires_at=9.0, expected_version=1),
            second.claim(f"ex-{n}", owner="second", lease_expires_at=9.0, expected_version=1),
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0].version == created.version + 1
        assert await second.load(f"ex-{n}") == winners[0]
    await first.close()
    await second.close()


async def test_two_stores_opening_a_new_file_at_once_both_migrate_it(db_path: Path) -> None:
    stores = [SQLiteStore(db_path) for _ in range(4)]
    assert await asyncio.gather(*(s.load("nope") for s in stores)) == [None] * 4
    for store in stores:
        await store.close()
    assert run_sql(db_path, "SELECT version FROM schema_version") == [(1,), (2,), (3,), (4,)]


_CHILD = """
import asyncio, sys
from dwf.storage.base import Checkpoint, Status
from dwf.storage.sqlite import SQLiteStore

async def main(path):
    store = SQLiteStore(path)
    record = await store.load("ex-1")
    await store.claim("ex-1", owner="child", lease_expires_at=9e9, expected_version=record.version)
    await store.checkpoint(Checkpoint(
        execution_id="ex-1", owner="child", status=Status.COMPLETED, position=["end"],
        set_variables={"from_child": True}, output="done", set_output=True,
    ))
    await store.close()

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
async def test_a_checkpoint_written_by_another_process_is_visible(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.create(make_record(variables={"a": 1}), "d")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        str(db_path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, stderr.decode()
    loaded = await store.load("ex-1")
    assert loaded is not None
    assert (loaded.status, loaded.output, loaded.variables, loaded.version) == (
        Status.COMPLETED,
        "done",
        {"a": 1, "from_child": True},
        3,
    )
    await store.close()


async def test_a_checkpoint_after_1000_variables_writes_only_the_changed_rows(
    db_path: Path,
) -> None:
    store = SQLiteStore(db_path)
    many = {f"v{i}": {"i": i} for i in range(1000)}
    await running(store, variables=many, state={f"s{i}": i for i in range(1000)})
    triggers = "".join(
        f"CREATE TRIGGER count_{table}_{op} AFTER {op} ON {table}"
        f" BEGIN INSERT INTO writes VALUES ('{table}', '{op}'); END;"
        for table in ("variables", "state", "executions", "log")
        for op in ("INSERT", "UPDATE", "DELETE")
    )
    run_sql(db_path, f"CREATE TABLE writes (tbl TEXT, op TEXT); {triggers}")

    def writes() -> list[tuple[object, ...]]:
        found = run_sql(
            db_path, "SELECT tbl, op, COUNT(*) FROM writes GROUP BY tbl, op ORDER BY 1, 2"
        )
        run_sql(db_path, "DELETE FROM writes")
        return found

    changes = {"set_variables": {"v1": "changed", "new": 1}, "delete_variables": ["v2"]}
    version = await store.checkpoint(step(**changes, set_state={"s1": 0}))
    # A checkpoint that changes only variables, state and the position appends one log row.
    assert writes() == [("log", "INSERT", 1)]
    await store.checkpoint(step(set_state={"s1": 1}, entries=[make_entry()]))
    assert writes() == [("log", "INSERT", 1)]
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.version == version + 1
    assert len(loaded.variables) == 1000 and loaded.variables["v1"] == "changed"
    assert loaded.state["s1"] == 1

    # Any other write first brings the snapshot up to date: only the changed rows, once each.
    assert await store.set_status("ex-1", expected_version=version + 1, status=Status.FAILED)
    assert writes() == [
        ("executions", "UPDATE", 2),  # the snapshot, then the status
        ("state", "UPDATE", 1),
        ("variables", "DELETE", 1),
        ("variables", "INSERT", 1),
        ("variables", "UPDATE", 1),
    ]
    reloaded = await store.load("ex-1")
    assert reloaded is not None
    assert (reloaded.variables, reloaded.state) == (loaded.variables, loaded.state)
    assert reloaded.version == version + 2
    await store.close()


async def test_a_write_that_fails_midway_rolls_back_completely(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    claimed = await running(store, variables={"a": 1})
    run_sql(
        db_path,
        "CREATE TRIGGER refuse BEFORE INSERT ON log BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
    )
    with pytest.raises(StoreError, match="disk on fire"):
        await store.checkpoint(step(set_variables={"a": 2, "b": 3}, entries=[make_entry()]))
    assert await store.load("ex-1") == claimed
    await store.close()


@pytest.mark.parametrize("remembered", [False, True], ids=["first step", "next step"])
async def test_a_locked_database_raises_store_error_and_loses_nothing(
    db_path: Path, remembered: bool
) -> None:
    # The first step after a claim reads where the log ends; the next one appends in one
    # statement where the store remembers it ends (ops.append).
    store = open_store(f"sqlite:///{db_path}?busy_timeout=20ms")
    claimed = await running(store, variables={"a": 1})
    if remembered:
        await store.checkpoint(step(set_variables={"a": 1}))
        loaded = await store.load("ex-1")
        assert loaded is not None
        claimed = loaded
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="is locked") as caught:
            await store.checkpoint(step(set_variables={"a": 2}))
        assert str(db_path) in str(caught.value)
        assert "busy_timeout" in str(caught.value)
        assert await store.load("ex-1") == claimed  # reads still work while it is locked
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await store.checkpoint(step(set_variables={"a": 2})) == claimed.version + 1
    await store.close()


@pytest.fixture
def text_file(db_path: Path) -> Path:
    db_path.write_bytes(b"this is a text file, not a database\n" * 200)
    return db_path


async def test_a_file_that_is_not_sqlite_is_reported_with_what_to_do(text_file: Path) -> None:
    store = SQLiteStore(text_file)
    with pytest.raises(StoreError, match="is not a dwf SQLite store or is corrupt") as caught:
        await store.load("ex-1")
    assert str(text_file) in str(caught.value)
    assert "Move it aside or choose another --store" in str(caught.value)
    await store.close()


async def test_another_programs_database_is_not_taken_over(db_path: Path) -> None:
    run_sql(db_path, "CREATE TABLE customers (id INTEGER)")
    store = SQLiteStore(db_path)
    with pytest.raises(StoreError, match=r"not a dwf SQLite store.*customers"):
        await store.create(make_record(), "d")
    await store.close()
    assert run_sql(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'") == [
        ("customers",)
    ]


async def test_a_store_from_a_newer_dwf_asks_for_an_upgrade(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.create(make_record(), "d")
    await store.close()
    run_sql(db_path, "INSERT INTO schema_version VALUES (99, 0)")
    newer = SQLiteStore(db_path)
    with pytest.raises(StoreError, match=r"newer dwf \(schema version 99.*Upgrade dwf"):
        await newer.load("ex-1")
    await newer.close()


def sqlite_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "dwf-sqlite"}


async def joined(threads: set[threading.Thread]) -> bool:
    """Whether the threads ended (waited for off the event loop, at most 10 s)."""
    await asyncio.wait_for(asyncio.to_thread(lambda: [t.join(10) for t in threads]), 20)
    return not any(t.is_alive() for t in threads)


async def test_the_worker_thread_ends_with_close_or_when_the_store_is_dropped(
    db_path: Path,
) -> None:
    before = sqlite_threads()
    store = SQLiteStore(db_path)
    await store.create(make_record(), "d")
    started = sqlite_threads() - before
    assert len(started) == 1
    await store.close()
    assert await joined(started)

    dropped = SQLiteStore(db_path)
    assert await dropped.load("ex-1") is not None
    started = sqlite_threads() - before
    assert len(started) == 1
    del dropped
    gc.collect()
    assert await joined(started)


async def test_calls_from_many_tasks_all_complete_in_order_of_submission(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await running(store)
    versions = await asyncio.gather(
        *(store.checkpoint(step(set_variables={f"v{i}": i})) for i in range(50))
    )
    assert versions == list(range(3, 53))
    loaded = await store.load("ex-1")
    assert loaded is not None and len(loaded.variables) == 50
    await store.close()


def record_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that run the store's loads, in order."""
    names: list[str] = []
    real = sqlite_ops.load

    def load(conn: sqlite3.Connection, execution_id: str) -> ExecutionRecord | None:
        names.append(threading.current_thread().name)
        return real(conn, execution_id)

    monkeypatch.setattr(sqlite_ops, "load", load)
    return names


async def test_an_idle_store_runs_calls_on_the_loop_thread_and_io_thread_never_does(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Handing a call to the worker thread costs two thread wake-ups, as much as a disk sync on
    # small virtual machines; the loop's thread does fast, uncontended calls itself.
    threads = record_threads(monkeypatch)
    loop_thread = threading.current_thread().name
    monkeypatch.setattr(sqlite_module, "INLINE_LIMIT", 60.0)  # however loaded the machine is
    store = SQLiteStore(db_path)
    await running(store)  # opens the connection, on the worker thread
    threads.clear()
    for _ in range(3):
        await store.load("ex-1")
    assert threads == [loop_thread] * 3
    await store.close()

    threads.clear()
    store = SQLiteStore(db_path, io="thread")
    for _ in range(3):
        await store.load("ex-1")
    assert threads == ["dwf-sqlite"] * 3
    await store.close()


async def test_after_a_slow_call_the_next_calls_go_to_the_worker_thread(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = record_threads(monkeypatch)
    monkeypatch.setattr(sqlite_module, "INLINE_LIMIT", 60.0)
    store = SQLiteStore(db_path)
    await running(store)
    threads.clear()
    monkeypatch.setattr(sqlite_module, "INLINE_LIMIT", 0.0)  # every call counts as slow
    await store.load("ex-1")  # on the loop: the call before it was fast
    await store.load("ex-1")
    monkeypatch.setattr(sqlite_module, "INLINE_LIMIT", 60.0)
    await store.load("ex-1")  # the previous one counted as slow
    await store.load("ex-1")
    loop_thread = threading.current_thread().name
    assert threads == [loop_thread, "dwf-sqlite", "dwf-sqlite", loop_thread]
    await store.close()


@pytest.mark.parametrize("remembered", [False, True], ids=["first step", "next step"])
async def test_a_locked_database_is_waited_for_on_the_worker_thread_not_the_loop(
    db_path: Path, remembered: bool
) -> None:
    store = SQLiteStore(db_path)
    claimed = await running(store, variables={"a": 1})
    if remembered:
        claimed.version = await store.checkpoint(step(set_variables={"a": 1}))
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def unlock_later() -> None:
        await asyncio.sleep(0.3)
        blocker.execute("ROLLBACK")

    ticker = asyncio.create_task(tick())
    unlocker = asyncio.create_task(unlock_later())
    try:
        version = await store.checkpoint(step(set_variables={"a": 2}))
    finally:
        ticker.cancel()
        await unlocker
        blocker.close()
    assert version == claimed.version + 1
    assert ticks >= 10  # the loop went on running while the checkpoint waited for the lock
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.variables == {"a": 2}
    await store.close()


async def test_a_long_series_of_calls_on_the_loop_thread_lets_other_tasks_run(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(db_path)
    await running(store)
    monkeypatch.setattr(sqlite_module, "_YIELD_EVERY", 0.0)
    ran = asyncio.Event()

    async def other() -> None:
        ran.set()

    task = asyncio.create_task(other())
    await store.load("ex-1")
    await store.load("ex-1")
    assert ran.is_set()  # without the yield, it would wait until this test awaits
    await task
    await store.close()


def older_store(path: Path, version: int) -> sqlite3.Connection:
    """A connection to a new store of schema ``version``, as that dwf made it (for data to be
    written as it wrote it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL)")
    for number in range(1, version + 1):
        for statement in MIGRATIONS[number - 1]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (number,))
    return conn


def write_schema_1_store(path: Path) -> None:
    """A store as the first released schema wrote it: two executions, one with its root
    position, other state, variables and two audit entries."""
    conn = older_store(path, 1)
    conn.execute("INSERT INTO definitions VALUES ('hash-1', 'definition text', 1)")
    for n, eid in enumerate(("ex-1", "ex-2"), start=1):
        conn.execute(
            "INSERT INTO executions (id, workflow_id, definition_hash, status, input, position,"
            " owner, lease_expires_at, version, created_at, updated_at)"
            " VALUES (?, 'order', 'hash-1', 'running', '{\"n\":1}', '[\"a\"]', ?, 2000, 4, ?, ?)",
            (eid, OWNER, 1000.0 + n, 1000.0 + n),
        )
    conn.executemany("INSERT INTO state VALUES ('ex-1', ?, ?)", [("|pos", '"b"'), ("loop|i", "3")])
    conn.execute("INSERT INTO variables VALUES ('ex-1', 'a', '[1,2.5]')")
    conn.executemany(
        "INSERT INTO entries VALUES ('ex-1', ?, ?, ?, 'call', 'completed', 1, 10, 11, ?, NULL)",
        [(1, "a", "a", '{"x":1}'), (2, "b", "b", None)],
    )
    conn.close()


async def test_a_store_of_the_first_schema_is_migrated_with_everything_in_it(
    db_path: Path,
) -> None:
    write_schema_1_store(db_path)
    store = SQLiteStore(db_path)
    record = await store.load("ex-1")
    assert record is not None
    assert (record.state, record.variables, record.input, record.version) == (
        {"|pos": "b", "loop|i": 3},
        {"a": [1, 2.5]},
        {"n": 1},
        4,
    )
    old_entries = await store.entries("ex-1")
    assert [(e.seq, e.step_id, e.output) for e in old_entries] == [
        (1, "a", {"x": 1}),
        (2, "b", None),
    ]
    assert await store.entries("ex-2") == []
    assert [s.id for s in await store.find()] == ["ex-2", "ex-1"]

    # New entries continue the numbering; the root position goes on being kept.
    await store.checkpoint(step(set_state={"|pos": "c"}, entries=[make_entry("c")]))
    assert [e.seq for e in await store.entries("ex-1")] == [1, 2, 3]
    record = await store.load("ex-1")
    assert record is not None and record.state == {"|pos": "c", "loop|i": 3}
    await store.close()
    assert run_sql(db_path, "SELECT version FROM schema_version") == [(1,), (2,), (3,), (4,)]


async def test_the_root_position_is_kept_in_the_execution_row_not_in_a_state_row(
    db_path: Path,
) -> None:
    # The engine moves the root frame's position with every step: keeping it in the row that
    # every checkpoint rewrites anyway saves a page write per step.
    store = SQLiteStore(db_path)
    await running(store, state={"|pos": "a", "other": 1})
    run_sql(
        db_path,
        "CREATE TABLE writes (op TEXT);"
        + "".join(
            f"CREATE TRIGGER count_{op} AFTER {op} ON state"
            f" BEGIN INSERT INTO writes VALUES ('{op}'); END;"
            for op in ("INSERT", "UPDATE", "DELETE")
        ),
    )
    await store.checkpoint(step(set_state={"|pos": "b"}, entries=[make_entry()]))
    assert run_sql(db_path, "SELECT op FROM writes") == []
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.state == {"|pos": "b", "other": 1}

    await store.checkpoint(step(delete_state=["|pos"]))
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.state == {"other": 1}
    await store.checkpoint(step(delete_state=["|pos"], set_state={"|pos": "c"}))
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.state == {"|pos": "c", "other": 1}
    await store.close()


async def test_deleting_an_execution_keeps_the_entries_of_its_neighbours(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    for eid in ("ex-1", "ex-2", "ex-3"):
        await running(store, eid)
        await store.checkpoint(step(eid, entries=[make_entry(eid), make_entry(eid)]))
    assert await store.delete("ex-2")
    assert [len(await store.entries(eid)) for eid in ("ex-1", "ex-2", "ex-3")] == [2, 0, 2]
    # A new execution may get the number of the newest one after it is deleted, never its
    # entries.
    assert await store.delete("ex-3")
    await running(store, "ex-4")
    assert await store.entries("ex-4") == []
    assert len(await store.entries("ex-1")) == 2
    await store.close()


async def test_a_directory_that_cannot_be_created_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = SQLiteStore(tmp_path / "file" / "sub" / "dwf.db")
    with pytest.raises(StoreError, match="cannot create the directory"):
        await store.load("ex-1")
    await store.close()


async def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a" / "b" / "dwf.db")
    await store.create(make_record(), "d")
    await store.close()
    assert (tmp_path / "a" / "b" / "dwf.db").is_file()


# -- URLs ------------------------------------------------------------------------------------


def test_sqlite_urls_follow_sqlalchemy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    def path_of(url: str) -> str:
        store = open_store(url)
        assert isinstance(store, SQLiteStore)
        return os.path.realpath(store.path)

    here = os.path.realpath(tmp_path)
    assert path_of("sqlite:///rel/x.db") == os.path.join(here, "rel", "x.db")
    assert path_of(f"sqlite:///{tmp_path}/abs.db") == os.path.join(here, "abs.db")
    assert path_of("plain.db") == os.path.join(here, "plain.db")
    assert path_of(f"{tmp_path}/other.sqlite3") == os.path.join(here, "other.sqlite3")
    assert path_of("sqlite:///with%20space.db") == os.path.join(here, "with space.db")


def test_sqlite_url_options_are_parsed_and_kept_in_the_url(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/x.db?synchronous=NORMAL&busy_timeout=250ms&io=Thread")
    assert isinstance(store, SQLiteStore)
    assert (store.synchronous, store.busy_timeout, store.io) == ("normal", 0.25, "thread")
    again = open_store(store.url)
    assert isinstance(again, SQLiteStore)
    assert (again.path, again.synchronous, again.busy_timeout, again.io) == (
        store.path,
        "normal",
        0.25,
        "thread",
    )
    default = SQLiteStore(tmp_path / "y.db")
    assert (default.synchronous, default.busy_timeout, default.io) == ("full", 10.0, "auto")
    assert default.url == f"sqlite:///{tmp_path}/y.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///x.db?cache=shared", "unknown SQLite store option 'cache'.*synchronous"),
        ("sqlite:///x.db?synchronous=fast", "synchronous must be one of full"),
        ("sqlite:///x.db?busy_timeout=soon", "busy_timeout .* must be a number of seconds"),
        ("sqlite:///x.db?io=fast", "io .* must be auto or thread"),
        ("sqlite://x.db", "three slashes"),
        ("sqlite:///", "has no file path"),
        ("mysql://root:hunter2@db/prod", r"unknown store URL 'mysql://root:\*\*\*@db/prod'"),
        ("dwf.txt", "Known: memory://, sqlite:///"),
    ],
)
def test_bad_store_urls_raise_configuration_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("postgresql://u@localhost/dwf", "dwf.storage.postgres", "postgres"),
        ("postgres://u@localhost/dwf", "dwf.storage.postgres", "postgres"),
        ("redis://localhost:6379/0", "dwf.storage.redis", "redis"),
    ],
)
def test_server_stores_without_their_extra_say_what_to_install(
    url: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(ConfigurationError, match=rf'pip install "dwf\[{extra}\]"'):
        open_store(url)


def test_no_url_means_dwf_store_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DWF_STORE", "memory://")
    assert isinstance(open_store(), MemoryStore)
    monkeypatch.delenv("DWF_STORE")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    store = open_store()
    assert isinstance(store, SQLiteStore)
    assert store.path == str(tmp_path / "data" / "dwf" / "dwf.db")


async def test_the_default_store_creates_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    store = open_store(default_store_url())
    await store.create(make_record(), "d")
    await store.close()
    assert (tmp_path / "data" / "dwf" / "dwf.db").is_file()


def test_default_store_url_uses_each_platforms_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    monkeypatch.setattr(sys, "platform", "linux")
    assert default_store_url() == sqlite_url(f"{tmp_path}/.local/share/dwf/dwf.db")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_store_url() == sqlite_url(f"{tmp_path}/Library/Application Support/dwf/dwf.db")
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert default_store_url() == sqlite_url(f"{tmp_path}/Local/dwf/dwf.db")


def test_an_engine_halts_and_resumes_through_the_sync_wrappers(tmp_path: Path) -> None:
    check_sync_engine_round_trip(f"sqlite:///{tmp_path}/sync.db", SQLiteStore)


@pytest.mark.parametrize("seed", range(6))
async def test_the_journal_and_its_snapshots_read_back_as_the_memory_store_does(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    # Random checkpoints (variables and state set and deleted, the root position moved, zero
    # to three entries, now and then a lease, a wake-up time, a halt and a claim), with small
    # snapshot limits so that every path runs often: after each, the SQLite store reads back
    # exactly what the in-memory store does.
    monkeypatch.setattr(sqlite_ops, "SNAPSHOT_ROWS", 4)
    monkeypatch.setattr(sqlite_ops, "SNAPSHOT_BYTES", 300)
    rng = random.Random(seed)
    now = [1_500.0]

    def clock() -> float:
        return now[0]

    stores: list[Store] = [MemoryStore(clock=clock), SQLiteStore(db_path, clock=clock)]
    for store in stores:
        await running(store, variables={"a": 1}, state={"|pos": "s0", "k": "v"})
    names = ["a", "b", "c", "big", "ünï"]
    keys = ["|pos", "k", "loop|i", "x/#y|done"]
    version = 2
    for index in range(60):
        now[0] += 1
        fields: dict[str, Any] = {
            "position": [f"s{index}"],
            "set_variables": {
                n: rng.choice([index, "x" * rng.randrange(0, 200), {"n": [index, None]}])
                for n in rng.sample(names, rng.randrange(0, 3))
            },
            "delete_variables": rng.sample(names, rng.randrange(0, 2)),
            "set_state": dict.fromkeys(
                rng.sample(keys, rng.randrange(0, 3)), rng.choice([f"at {index}", "x" * 100])
            ),
            "delete_state": rng.sample(keys, rng.randrange(0, 2)),
            "entries": [make_entry(f"s{index}-{i}") for i in range(rng.randrange(0, 4))],
        }
        if fields["entries"] and rng.random() < 0.7:
            # As assign and call do: the step's output holds the values it sets, which the
            # journal then keeps only once.
            shared = {**fields["set_variables"], "state": fields["set_state"]}
            fields["entries"][-1].output = rng.choice([shared, [shared], "x" * 100])
        roll = rng.random()
        if roll < 0.1:
            fields["lease_expires_at"] = now[0] + 30
        elif roll < 0.15:
            fields.update(wake_at=now[0] + 5, set_wake_at=True)
        halting = 0.15 <= roll < 0.2
        if halting:
            fields["status"] = Status.HALTED
        versions = [await store.checkpoint(step(**fields)) for store in stores]
        version += 1
        assert versions == [version, version]
        if halting:
            claims = [
                await store.claim(
                    "ex-1", owner=OWNER, lease_expires_at=now[0] + 30, expected_version=version
                )
                for store in stores
            ]
            assert claims[0] == claims[1] and claims[0] is not None
            version += 1
        memory, sqlite = [await store.load("ex-1") for store in stores]
        assert sqlite == memory, f"step {index}"
        assert await stores[1].entries("ex-1") == await stores[0].entries("ex-1")
        assert await stores[1].find() == await stores[0].find()
    if seed % 2:
        assert await stores[1].set_status("ex-1", expected_version=version, status=Status.CANCELLED)
        assert await stores[0].set_status("ex-1", expected_version=version, status=Status.CANCELLED)
    else:  # completed by a checkpoint, which the log may take as it is
        result = {"n": seed, "text": "x" * 100 * (seed % 3)}  # long ones are written once
        done = ending(result)
        assert [await store.checkpoint(done) for store in stores] == [version + 1] * 2
    assert await stores[1].load("ex-1") == await stores[0].load("ex-1")
    assert await stores[1].find() == await stores[0].find()
    assert await stores[1].entries("ex-1") == await stores[0].entries("ex-1")
    for store in stores:
        await store.close()


async def test_a_checkpoint_past_the_journal_limits_updates_the_snapshot(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await running(store)
    big = "x" * (sqlite_ops.SNAPSHOT_BYTES // 2)

    def counts() -> list[tuple[object, ...]]:
        """The variables in the snapshot, and the log rows past it."""
        return run_sql(
            db_path,
            "SELECT (SELECT COUNT(*) FROM variables), (SELECT COUNT(*) FROM log, executions"
            " WHERE log.key > (executions.num << 32) + executions.snap_n)",
        )

    await store.checkpoint(step(set_variables={"v0": big}))
    assert counts() == [(0, 1)]  # in the log
    # The second would take the log past SNAPSHOT_BYTES: the snapshot takes both.
    await store.checkpoint(step(set_variables={"v1": big}))
    assert counts() == [(2, 0)]
    # The long changes are cleared from the log once in the snapshot; short ones stay.
    assert run_sql(db_path, "SELECT COUNT(*) FROM log WHERE delta IS NOT NULL") == [(0,)]
    for index in range(sqlite_ops.SNAPSHOT_ROWS):
        await store.checkpoint(step(set_state={"i": index}, entries=[make_entry()]))
    assert counts() == [(2, sqlite_ops.SNAPSHOT_ROWS)]
    await store.checkpoint(step(set_state={"i": "last"}, entries=[make_entry()]))
    assert counts() == [(2, 0)]  # past SNAPSHOT_ROWS
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.state["i"] == "last"
    assert loaded.variables == {"v0": big, "v1": big}
    assert [e.seq for e in await store.entries("ex-1")] == list(
        range(1, sqlite_ops.SNAPSHOT_ROWS + 2)
    )
    await store.close()


async def test_the_checkpoint_that_ends_a_run_is_appended_past_the_journal_limits(
    db_path: Path,
) -> None:
    # No step follows a completion: bringing the snapshot up to date would write every
    # variable again for nothing. The log takes it, and reads back the same.
    store = SQLiteStore(db_path)
    await running(store)
    for index in range(sqlite_ops.SNAPSHOT_ROWS):
        await store.checkpoint(step(set_variables={f"v{index}": index}, entries=[make_entry()]))
    await store.checkpoint(ending("ok"))
    assert run_sql(
        db_path,
        "SELECT (SELECT COUNT(*) FROM variables), (SELECT COUNT(*) FROM log, executions"
        " WHERE log.key > (executions.num << 32) + executions.snap_n)",
    ) == [(0, sqlite_ops.SNAPSHOT_ROWS + 1)]
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.status == Status.COMPLETED and loaded.output == "ok"
    assert loaded.variables == {
        **{f"v{index}": index for index in range(sqlite_ops.SNAPSHOT_ROWS)},
        "result": "ok",
    }
    await store.close()


async def test_a_store_of_the_second_schema_is_migrated_and_its_runs_go_on(db_path: Path) -> None:
    # Schema 2 kept the audit entries in `entries`, keyed (num << 32) + seq, and the count of
    # entries and the root position in the executions row.
    conn = older_store(db_path, 2)
    conn.execute(
        "INSERT INTO executions (num, id, workflow_id, definition_hash, status, input, position,"
        " owner, lease_expires_at, version, created_at, updated_at, last_seq, root_position)"
        " VALUES (7, 'ex-1', 'order', 'h', 'running', '{}', '[\"b\"]', ?, 2000, 4, 1, 2, 2,"
        " '\"b\"')",
        (OWNER,),
    )
    conn.execute("INSERT INTO variables VALUES ('ex-1', 'a', '[1,2.5]')")
    conn.executemany(
        "INSERT INTO entries VALUES (?, ?, ?, 'call', 'completed', 1, 10, 11, ?, NULL)",
        [((7 << 32) + 1, "a", "a", '{"x":1}'), ((7 << 32) + 2, "b", "b", None)],
    )
    conn.close()

    store = SQLiteStore(db_path)
    record = await store.load("ex-1")
    assert record is not None
    assert (record.variables, record.state, record.version) == ({"a": [1, 2.5]}, {"|pos": "b"}, 4)
    assert [(e.seq, e.step_id) for e in await store.entries("ex-1")] == [(1, "a"), (2, "b")]
    # The run goes on: its checkpoints continue the numbering, through the journal.
    assert await store.checkpoint(step(set_state={"|pos": "c"}, entries=[make_entry("c")])) == 5
    assert await store.checkpoint(step(set_variables={"a": 3})) == 6
    record = await store.load("ex-1")
    assert record is not None
    assert (record.variables, record.state, record.version) == ({"a": 3}, {"|pos": "c"}, 6)
    assert [e.seq for e in await store.entries("ex-1")] == [1, 2, 3]
    assert await store.set_status("ex-1", expected_version=6, status=Status.CANCELLED)
    await store.close()
    assert run_sql(db_path, "SELECT root_pos, last_seq, snap_n FROM executions") == [('"c"', 3, 4)]


async def test_a_store_of_the_third_schema_is_migrated_and_an_older_reader_is_refused(
    db_path: Path,
) -> None:
    # Schema 3 kept every output in the executions row. Its completed executions read back as
    # they were; a process still running the previous dwf fails at its next read (the column
    # it reads the root position from is renamed) rather than reading no output for the
    # executions this version completes.
    conn = older_store(db_path, 3)
    conn.execute(
        "INSERT INTO executions (num, id, workflow_id, definition_hash, status, input, position,"
        " output, version, created_at, updated_at, root_position)"
        " VALUES (3, 'done', 'order', 'h', 'completed', '{}', '[]', '{\"total\":5}', 9, 1, 2,"
        " NULL)"
    )
    conn.close()
    store = SQLiteStore(db_path)
    done = await store.load("done")
    assert done is not None and (done.status, done.output) == (Status.COMPLETED, {"total": 5})
    await running(store, "ex-1")
    await store.checkpoint(step(set_state={"|pos": "b"}, entries=[make_entry("a")]))
    result = {"text": "x" * 100}
    await store.checkpoint(ending(result, set_variables={}))
    finished = await store.load("ex-1")
    assert finished is not None and finished.output == result
    await store.close()
    with pytest.raises(sqlite3.OperationalError, match="no such column: root_position"):
        run_sql(db_path, "SELECT root_position, num, snap_n FROM executions WHERE id = 'ex-1'")


async def test_a_call_made_while_the_worker_is_busy_waits_behind_it_on_the_worker(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loop's thread may use the connection only while the worker neither runs nor has a
    # job: a call made meanwhile queues behind the job, in order, never beside it.
    threads = record_threads(monkeypatch)
    monkeypatch.setattr(sqlite_module, "INLINE_LIMIT", 60.0)
    store = SQLiteStore(db_path)
    await running(store)
    threads.clear()
    started, release = threading.Event(), threading.Event()
    order: list[str] = []

    def hold_the_worker() -> None:
        started.set()
        assert release.wait(10)
        order.append("job")

    job = asyncio.ensure_future(store._worker.call(hold_the_worker))
    assert await asyncio.to_thread(started.wait, 10)
    load = asyncio.ensure_future(store.load("ex-1"))
    await asyncio.sleep(0.05)
    assert not load.done()  # queued, not run beside the job
    release.set()
    await job
    loaded = await load
    order.append("load")
    assert loaded is not None and order == ["job", "load"]
    assert threads == ["dwf-sqlite"]
    await store.load("ex-1")  # the worker is idle again: back on the loop's thread
    assert threads == ["dwf-sqlite", threading.current_thread().name]
    await store.close()


async def test_a_completion_goes_to_the_log_and_the_row_without_rewriting_the_snapshot(
    db_path: Path,
) -> None:
    store = SQLiteStore(db_path)
    await running(store, variables={"a": 0})
    version = 2
    for index in range(5):
        version = await store.checkpoint(step(set_variables={f"v{index}": index}))
    triggers = "".join(
        f"CREATE TRIGGER count_{table}_{op} AFTER {op} ON {table}"
        f" BEGIN INSERT INTO writes VALUES ('{table}', '{op}'); END;"
        for table in ("variables", "state", "executions", "log")
        for op in ("INSERT", "UPDATE", "DELETE")
    )
    run_sql(db_path, f"CREATE TABLE writes (tbl TEXT, op TEXT); {triggers}")
    done = step(
        status=Status.COMPLETED,
        position=[],
        entries=[make_entry("end")],
        output={"total": 10},
        set_output=True,
    )
    assert await store.checkpoint(done) == version + 1
    # The status, owner, lease and output in the row (its indexes as they must), the step and
    # its changes in the log; the variables of the five steps before stay in the log.
    assert run_sql(db_path, "SELECT tbl, op, COUNT(*) FROM writes GROUP BY 1, 2 ORDER BY 1, 2") == [
        ("executions", "UPDATE", 1),
        ("log", "INSERT", 1),
    ]
    loaded = await store.load("ex-1")
    assert loaded is not None
    assert (loaded.status, loaded.owner, loaded.lease_expires_at) == (Status.COMPLETED, None, None)
    assert (loaded.output, loaded.version, loaded.position) == ({"total": 10}, version + 1, [])
    assert loaded.variables == {"a": 0, **{f"v{i}": i for i in range(5)}}
    [summary] = await store.find(status=Status.COMPLETED)
    assert (summary.id, summary.version) == ("ex-1", version + 1)
    assert await store.find_due(now=10**10) == []
    await store.close()


async def test_an_execution_with_no_room_left_in_its_log_says_so_and_writes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_ops, "_MAX_ROWS", 2)
    store = SQLiteStore(db_path)
    await running(store)
    await store.checkpoint(step(entries=[make_entry("a")]))
    before = await store.load("ex-1")
    with pytest.raises(StoreError, match=r"execution ex-1 has 2 audit entries.*new execution"):
        await store.checkpoint(
            step(set_variables={"x": 1}, entries=[make_entry("b"), make_entry()])
        )
    assert await store.load("ex-1") == before
    await store.close()


async def test_a_store_that_remembers_where_a_log_ends_sees_what_others_wrote(
    db_path: Path,
) -> None:
    # A store remembers where the log of each execution it runs ends, and appends the next step
    # there without reading it first, if the execution is still as it was. Here a second store
    # writes behind its back, even as the same owner (which no engine does): the first one
    # notices, every time, and writes what reading first would have written.
    first, second = SQLiteStore(db_path), SQLiteStore(db_path)
    await running(first)  # version 2
    assert await first.checkpoint(step(set_variables={"a": 1}, entries=[make_entry("a")])) == 3
    # Rows appended by someone else: the remembered end is taken.
    assert await second.checkpoint(step(set_variables={"b": 1}, entries=[make_entry("b")])) == 4
    assert await second.checkpoint(step(delete_variables=["a"])) == 5
    assert await first.checkpoint(step(set_variables={"c": 1}, entries=[make_entry("c")])) == 6
    # A claim (the snapshot brought up to date, the executions row's version moved on).
    claimed = await second.claim("ex-1", owner=OWNER, lease_expires_at=3_000.0, expected_version=6)
    assert claimed is not None and claimed.version == 7
    assert await first.checkpoint(step(set_variables={"d": 1}, entries=[make_entry("d")])) == 8
    loaded = await second.load("ex-1")
    assert loaded is not None and loaded.version == 8
    assert loaded.variables == {"b": 1, "c": 1, "d": 1}
    entries = await second.entries("ex-1")
    assert [(e.seq, e.step_id) for e in entries] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    # Another owner: refused, and nothing is written.
    other = await second.claim(
        "ex-1", owner="worker-b", lease_expires_at=3_000.0, expected_version=8
    )
    assert other is not None
    with pytest.raises(LeaseLost):
        await first.checkpoint(step(set_variables={"e": 1}, entries=[make_entry("e")]))
    assert await second.load("ex-1") == other
    assert len(await second.entries("ex-1")) == 4
    # Deleted, and a new execution under the same number: the id tells them apart.
    assert await second.delete("ex-1")
    await running(second, "ex-2")
    with pytest.raises(LeaseLost):
        await first.checkpoint(step(set_variables={"e": 1}, entries=[make_entry("e")]))
    assert await second.entries("ex-2") == []
    for store in (first, second):
        await store.close()


async def test_a_step_appends_where_its_log_ended_without_reading_first(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await running(store)
    await store.checkpoint(step(set_variables={"a": 1}, entries=[make_entry("a")]))
    statements: list[str] = []
    assert store._conn is not None
    store._conn.set_trace_callback(statements.append)
    await store.checkpoint(step(set_variables={"b": 2}, entries=[make_entry("b")]))
    await store.checkpoint(step(set_state={"k": 1}, entries=[]))  # no entry: a row of changes
    store._conn.set_trace_callback(None)
    # One statement each, which is a transaction of its own.
    assert [s.split()[0] for s in statements] == ["INSERT", "INSERT"]
    # The next step of a run that goes on from a claim reads first, once.
    claimed = await store.claim("ex-1", owner=OWNER, lease_expires_at=3_000.0, expected_version=5)
    assert claimed is not None
    store._conn.set_trace_callback(statements.append)
    statements.clear()
    await store.checkpoint(step(set_variables={"c": 3}, entries=[make_entry("c")]))
    await store.checkpoint(step(set_variables={"d": 4}, entries=[make_entry("d")]))
    store._conn.set_trace_callback(None)
    assert [s.split()[0] for s in statements] == ["BEGIN", "SELECT", "INSERT", "COMMIT", "INSERT"]
    # Two entries (a retried step) are two rows: in one transaction, still without reading.
    statements.clear()
    store._conn.set_trace_callback(statements.append)
    retried = [make_entry("e", action="retried"), make_entry("e")]
    await store.checkpoint(step(set_variables={"e": 5}, entries=retried))
    store._conn.set_trace_callback(None)
    assert [s.split()[0] for s in statements] == ["BEGIN", "INSERT", "INSERT", "COMMIT"]
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.version == 9
    assert loaded.variables == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    assert loaded.state["k"] == 1
    entries = await store.entries("ex-1")
    assert [(e.seq, e.step_id, e.action) for e in entries[-3:]] == [
        (4, "d", "completed"),
        (5, "e", "retried"),
        (6, "e", "completed"),
    ]
    await store.close()


async def test_an_output_that_is_the_last_entrys_output_is_written_once(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await running(store)
    result = {"answer": "x" * 1000}

    def stored() -> list[tuple[object, ...]]:
        return run_sql(db_path, "SELECT output IS NULL, output_at IS NULL FROM executions")

    # Set while running, past the journal's limit (into the snapshot), then set again to a value
    # that no entry has: written as it is.
    await store.checkpoint(
        step(
            set_variables={"big": "y" * (sqlite_ops.SNAPSHOT_BYTES + 1)},
            entries=[make_entry("mid", output=result)],
            output=result,
            set_output=True,
        )
    )
    assert stored() == [(1, 0)]
    await store.checkpoint(step(output={"other": "z" * 100}, set_output=True))
    assert stored() == [(0, 1)]
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.output == {"other": "z" * 100}
    # The end step's output, which is also the execution's: a reference to its log row.
    await store.checkpoint(ending(result))
    assert stored() == [(1, 0)]
    loaded = await store.load("ex-1")
    assert loaded is not None and loaded.output == result and loaded.variables["result"] == result
    assert (await store.entries("ex-1"))[-1].output == result
    # A short output is kept in the row: nothing to save.
    await running(store, "ex-2")
    await store.checkpoint(ending("ok", "ex-2"))
    assert run_sql(db_path, "SELECT output, output_at FROM executions WHERE id = 'ex-2'") == [
        ('"ok"', None)
    ]
    await store.close()


async def test_a_definition_is_written_once_per_store(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.create(make_record("ex-1"), "the definition")
    statements: list[str] = []
    assert store._conn is not None
    store._conn.set_trace_callback(statements.append)
    await store.create(make_record("ex-2"), "the definition")
    store._conn.set_trace_callback(None)
    assert not [s for s in statements if "definitions" in s]
    assert await store.load_definition("hash-1") == "the definition"
    # A create that fails writes nothing, and the next one still writes its definition.
    with pytest.raises(InvalidTransition, match="already exists"):
        await store.create(make_record("ex-1", definition_hash="hash-2"), "second")
    assert await store.load_definition("hash-2") is None
    await store.create(make_record("ex-3", definition_hash="hash-2"), "second")
    assert await store.load_definition("hash-2") == "second"
    await store.close()
