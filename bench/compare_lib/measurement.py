"""What a worker reports, and the loop every system uses to take it. Standard library only."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .workloads import GROWING, Job


@dataclass
class Measurement:
    """The raw numbers of one worker process.

    Attributes:
        run_ns: Wall time of each measured run, in nanoseconds.
        position_ns: For the growing-state workload, the duration of each step of each run.
        settings: The storage settings actually in force, as read back where possible.
        versions: Versions of the packages measured.
    """

    run_ns: list[int] = field(default_factory=list)
    position_ns: list[list[int]] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_ns": self.run_ns,
            "position_ns": self.position_ns,
            "settings": self.settings,
            "versions": self.versions,
        }


def measure_runs(job: Job, run_once: Callable[[int], list[int]]) -> Measurement:
    """Call ``run_once(index)`` for the warm-up runs, then ``job.workload.runs`` measured runs.

    ``run_once`` does one complete run and returns the per-step durations it observed (only
    needed for the growing-state workload; return ``[]`` otherwise).
    """
    measurement = Measurement()
    warmup = job.workload.warmup_runs
    for index in range(warmup + job.workload.runs):
        started = time.perf_counter_ns()
        positions = run_once(index)
        elapsed = time.perf_counter_ns() - started
        if index < warmup:
            continue
        measurement.run_ns.append(elapsed)
        if job.workload.kind == GROWING:
            measurement.position_ns.append(positions)
    return measurement


def check_positions(positions: list[int], job: Job) -> list[int]:
    """Fail loudly when a system reported a different number of steps than it ran."""
    if len(positions) != job.workload.steps:
        raise RuntimeError(
            f"{job.system}: expected {job.workload.steps} step timings for "
            f"{job.workload.name}, got {len(positions)}"
        )
    return positions


def sqlite_settings(conn: Any) -> dict[str, str]:
    """Read back the journal mode and sync level in force on a DB-API SQLite connection."""
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {"journal_mode": str(journal), "synchronous": names.get(synchronous, str(synchronous))}
