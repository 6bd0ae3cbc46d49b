"""The workloads written the way a DBOS user writes them. Runs in the peers' interpreter.

A ``@DBOS.workflow()`` that calls a ``@DBOS.step()`` N times; DBOS checkpoints each step's output
in its system database, here SQLite (DBOS 3.x's default when no Postgres URL is given). The
human-in-the-loop workload is DBOS's documented messaging pattern: the workflow publishes that it
is waiting with ``DBOS.set_event``, then blocks in ``DBOS.recv``; the caller waits for the event
with ``DBOS.get_event`` and answers with ``DBOS.send``.

Storage settings: DBOS creates its own SQLAlchemy engine and sets only ``busy_timeout``,
``foreign_keys`` and ``IMMEDIATE`` transactions, so the journal mode is SQLite's default
(``DELETE``). The harness switches the file to WAL before DBOS opens it (WAL is persistent in the
file) and leaves ``synchronous`` at SQLite's compiled-in default, which is read back and reported.
DBOS has no in-memory system database; the in-memory variant is the same SQLite file on
``/dev/shm`` (tmpfs, where fsync costs nothing).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dbos import DBOS

from .measurement import Measurement, check_positions, measure_runs
from .workloads import DURABLE, GROWING, HALT, HALT_ANSWER, Job, payload

# On SQLite, recv and get_event learn about new rows by polling (1 s by default). The halt
# workload polls every millisecond, DBOS's minimum, so it measures the engine and not the timer.
HALT_POLLING_SEC = 0.001
SHM = Path("/dev/shm")

_step_ns: list[int] = []


@DBOS.step()
def trivial_step(index: int) -> int:
    return index


@DBOS.step()
def payload_step(index: int) -> str:
    return payload(index)


@DBOS.workflow()
def linear_workflow(steps: int) -> int:
    total = 0
    for index in range(steps):
        total += trivial_step(index)
    return total


@DBOS.workflow()
def growing_workflow(steps: int) -> dict[str, str]:
    state: dict[str, str] = {}
    for index in range(steps):
        started = time.perf_counter_ns()
        state[f"v{index}"] = payload_step(index)
        _step_ns.append(time.perf_counter_ns() - started)
    return state


@DBOS.workflow()
def approval_workflow() -> int:
    trivial_step(0)
    DBOS.set_event("status", "waiting for answer")
    answer = DBOS.recv("answer", timeout_seconds=60)
    return trivial_step(answer)


def run(job: Job) -> Measurement:
    path = _database_path(job)
    _use_wal(path)
    config: dict[str, Any] = {
        "name": "dwf-bench",
        "system_database_url": f"sqlite:///{path}",
        "log_level": "WARNING",
    }
    if job.workload.kind == HALT:
        config["notification_listener_polling_interval_sec"] = HALT_POLLING_SEC
    dbos = DBOS(config=config)  # type: ignore[arg-type]
    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    try:
        measurement = measure_runs(job, lambda _: _run_once(job))
        measurement.settings = _settings(dbos, path, job)
    finally:
        DBOS.destroy()
        if job.storage != DURABLE:
            shutil.rmtree(path.parent, ignore_errors=True)
    measurement.versions = {"dbos": version("dbos"), "sqlalchemy": version("sqlalchemy")}
    return measurement


def _run_once(job: Job) -> list[int]:
    kind = job.workload.kind
    if kind == HALT:
        handle = DBOS.start_workflow(approval_workflow)
        DBOS.get_event(handle.workflow_id, "status", timeout_seconds=60)
        DBOS.send(handle.workflow_id, HALT_ANSWER, "answer")
        if handle.get_result() != HALT_ANSWER:
            raise RuntimeError("dbos: the resumed workflow lost the answer")
        return []
    if kind == GROWING:
        _step_ns.clear()
        growing_workflow(job.workload.steps)
        return check_positions(list(_step_ns), job)
    linear_workflow(job.workload.steps)
    return []


def _database_path(job: Job) -> Path:
    if job.storage == DURABLE:
        return job.workdir / "dbos.sqlite"
    base = SHM if SHM.is_dir() else job.workdir
    shm_dir = base / f"dwf-bench-{job.workdir.name}"
    shm_dir.mkdir(parents=True, exist_ok=True)
    return shm_dir / "dbos.sqlite"


def _use_wal(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def _settings(dbos: DBOS, path: Path, job: Job) -> dict[str, str]:
    # Read back through a connection of DBOS's own engine, so the values are the ones in force.
    raw = dbos._sys_db.engine.raw_connection()
    try:
        journal = raw.cursor().execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = raw.cursor().execute("PRAGMA synchronous").fetchone()[0]
    finally:
        raw.close()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    where = "tmpfs file (/dev/shm)" if str(path).startswith(str(SHM)) else "file"
    settings = {
        "storage": f"SQLite system database, {where}",
        "journal_mode": str(journal),
        "synchronous": names.get(synchronous, str(synchronous)),
    }
    if job.workload.kind == HALT:
        settings["notification polling"] = f"{HALT_POLLING_SEC * 1000:g} ms"
    return settings
