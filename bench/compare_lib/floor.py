"""The floor: what one durable write per step costs with plain sqlite3 and nothing else.

Durable: a WAL file with ``synchronous=FULL``, one ``INSERT`` and one ``COMMIT`` per step, which is
one fsync of the WAL per step. In memory: the same statements on ``:memory:`` with
``synchronous=OFF``. The halt workload is three such steps (before, halt, after) plus the
``SELECT`` that reads the halt record back before resuming.
"""

from __future__ import annotations

import sqlite3
import time

from .measurement import Measurement, check_positions, measure_runs, sqlite_settings
from .workloads import DURABLE, GROWING, HALT, HALT_ANSWER, Job, payload


def run(job: Job) -> Measurement:
    conn = _connect(job)
    conn.execute(
        "CREATE TABLE steps (id INTEGER PRIMARY KEY, run INTEGER, step TEXT, data TEXT NOT NULL)"
    )
    conn.commit()

    def insert(run_index: int, step: str, data: str) -> None:
        conn.execute(
            "INSERT INTO steps (run, step, data) VALUES (?, ?, ?)", (run_index, step, data)
        )
        conn.commit()

    def run_once(run_index: int) -> list[int]:
        if job.workload.kind == HALT:
            insert(run_index, "before", '{"x": 1}')
            insert(run_index, "wait", '{"halted": "need answer"}')
            conn.execute(
                "SELECT data FROM steps WHERE run = ? AND step = 'wait'", (run_index,)
            ).fetchone()
            insert(run_index, "after", f'{{"answer": {HALT_ANSWER}}}')
            return []
        positions = []
        for index in range(job.workload.steps):
            data = payload(index) if job.workload.kind == GROWING else f'{{"x{index}": 1}}'
            started = time.perf_counter_ns()
            insert(run_index, f"s{index}", data)
            positions.append(time.perf_counter_ns() - started)
        return check_positions(positions, job) if job.workload.kind == GROWING else []

    measurement = measure_runs(job, run_once)
    measurement.settings = {
        "storage": "sqlite3 file" if job.storage == DURABLE else "sqlite3 :memory:",
        **sqlite_settings(conn),
    }
    measurement.versions = {"SQLite library (floor, dwf)": sqlite3.sqlite_version}
    conn.close()
    return measurement


def _connect(job: Job) -> sqlite3.Connection:
    if job.storage == DURABLE:
        conn = sqlite3.connect(job.workdir / "floor.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    else:
        conn = sqlite3.connect(":memory:")
        conn.execute("PRAGMA synchronous=OFF")
    return conn
