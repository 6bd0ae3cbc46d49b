"""What the benchmark runs: the workloads, their sizes and the job a worker process receives.

This module is imported by every worker, including the peers' interpreter, so it uses only the
standard library.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

LINEAR = "linear"
GROWING = "growing"
HALT = "halt"

DURABLE = "durable"
MEMORY = "memory"
STORAGES = (DURABLE, MEMORY)

PAYLOAD_CHARS = 1000
"""How much each step of the growing-state workload adds to the state."""

HALT_ANSWER = 42

WARMUP_STEPS = 1000
"""Steps each process runs, unmeasured, before it measures (see :attr:`Workload.warmup_runs`)."""


@dataclass(frozen=True)
class Workload:
    """One workload of the comparison.

    Attributes:
        name: Stable name used in the report and on the command line.
        kind: ``linear``, ``growing`` or ``halt``; decides what each system builds.
        steps: Steps per run. The halt workload always has three (before, halt, after).
        runs: Measured runs per worker process.
        title: One line for the report.
        warmup_runs: Unmeasured runs before them. A full run warms up with at least
            :data:`WARMUP_STEPS` steps, so every system's SQLite write-ahead log has reached the
            size it keeps: SQLite restarts the log after 1,000 pages, and until then each commit
            also grows the file, which makes its sync slower. Without this, a system writing
            one page per step (the floor) would be measured while growing its log and one
            writing four pages per step after, which flatters the second.
    """

    name: str
    kind: str
    steps: int
    runs: int
    title: str
    warmup_runs: int = 1

    @property
    def unit(self) -> str:
        """What one reported number measures: a step, or one halt-and-resume cycle."""
        return "cycle" if self.kind == HALT else "step"


def workloads(*, quick: bool) -> list[Workload]:
    """The four workloads, full size or the tiny CI size."""
    if quick:
        short, long, runs_short, runs_long, runs_halt = 10, 20, 2, 1, 2
    else:
        short, long, runs_short, runs_long, runs_halt = 10, 100, 100, 20, 50

    def warmup(steps: int) -> int:
        return 1 if quick else max(1, -(-WARMUP_STEPS // steps))

    return [
        Workload(
            "linear-short",
            LINEAR,
            short,
            runs_short,
            f"linear, {short} trivial steps",
            warmup(short),
        ),
        Workload(
            "linear-long", LINEAR, long, runs_long, f"linear, {long} trivial steps", warmup(long)
        ),
        Workload(
            "growing-state",
            GROWING,
            long,
            runs_long,
            f"{long} steps, each adds a new {PAYLOAD_CHARS}-character value to the state",
            warmup(long),
        ),
        Workload(
            "halt-resume",
            HALT,
            3,
            runs_halt,
            "step, halt, resume with an answer, step",
            warmup(3),
        ),
    ]


@dataclass(frozen=True)
class Job:
    """What one worker process measures: one workload on one system and one storage."""

    system: str
    workload: Workload
    storage: str
    workdir: Path

    def to_json(self) -> str:
        data = asdict(self)
        data["workdir"] = str(self.workdir)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        return cls(
            system=data["system"],
            workload=Workload(**data["workload"]),
            storage=data["storage"],
            workdir=Path(data["workdir"]),
        )


def payload(index: int) -> str:
    """The value step ``index`` of the growing-state workload adds: exactly PAYLOAD_CHARS long."""
    head = f"v{index}:"
    return head + "x" * (PAYLOAD_CHARS - len(head))
