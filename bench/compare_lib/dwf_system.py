"""The workloads on dwf. Runs in the project's interpreter, with the repository on ``sys.path``.

Durable storage is ``sqlite:///<file>?synchronous=full``; in memory it is ``memory://``. Each
workload is a YAML-shaped definition of ``assign`` steps chained by ``next``; the halt workload
puts a ``halt`` step between two of them and resumes with an answer.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import sqlite3
import time
from typing import Any

from .measurement import Measurement, check_positions
from .workloads import DURABLE, GROWING, HALT, HALT_ANSWER, Job, payload

REQUIRED_API = ("Engine", "load_workflow", "open_store")


def missing_api() -> str | None:
    """Why dwf cannot be measured in this interpreter, or None when it can."""
    try:
        dwf = importlib.import_module("dwf")
    except ImportError as error:
        return f"dwf is not importable: {error}"
    missing = [name for name in REQUIRED_API if not hasattr(dwf, name)]
    if missing:
        return f"dwf does not export {', '.join(missing)} yet (the engine has not landed)"
    return None


def run(job: Job) -> Measurement:
    reason = missing_api()
    if reason is not None:
        raise RuntimeError(reason)
    return asyncio.run(_measure(job))


async def _measure(job: Job) -> Measurement:
    import dwf

    stamps: list[float] = []

    def on_event(event: Any) -> None:
        if event.type == "step.completed":
            stamps.append(event.timestamp)

    store = dwf.open_store(_store_url(job))
    if job.workload.kind == GROWING:
        engine = dwf.Engine(store=store, on_event=on_event)
    else:
        engine = dwf.Engine(store=store)
    workflow = dwf.load_workflow(definition(job))
    measurement = Measurement()
    try:
        warmup = job.workload.warmup_runs
        for index in range(warmup + job.workload.runs):
            stamps.clear()
            started_at = time.time()
            started = time.perf_counter_ns()
            await _run_once(engine, workflow, job)
            elapsed = time.perf_counter_ns() - started
            if index < warmup:
                continue
            measurement.run_ns.append(elapsed)
            if job.workload.kind == GROWING:
                measurement.position_ns.append(_positions(started_at, stamps, job))
    finally:
        await engine.close()  # stops the lease renewer, then closes the store
    measurement.settings = _settings(job)
    measurement.versions = {"dwf": str(getattr(dwf, "__version__", "source tree"))}
    return measurement


async def _run_once(engine: Any, workflow: Any, job: Job) -> None:
    result = await engine.run(workflow, {"k": 1})
    if job.workload.kind == HALT:
        if result.status != "halted":
            raise RuntimeError(f"dwf: expected the run to halt, got status {result.status!r}")
        result = await engine.resume(result.execution_id, response={"answer": HALT_ANSWER})
    if result.status != "completed":
        raise RuntimeError(f"dwf: expected status 'completed', got {result.status!r}")


def _positions(started_at: float, stamps: list[float], job: Job) -> list[int]:
    """Per-step durations from consecutive step.completed timestamps (the end step is ignored)."""
    edges = [started_at, *stamps[: job.workload.steps]]
    durations = [int((after - before) * 1e9) for before, after in itertools.pairwise(edges)]
    return check_positions(durations, job)


def definition(job: Job) -> dict[str, Any]:
    """The workflow definition of ``job``'s workload, as a user would write it in YAML."""
    kind = job.workload.kind
    if kind == HALT:
        steps = [
            {"id": "before", "type": "assign", "set": {"x": 1}, "next": "wait"},
            {"id": "wait", "type": "halt", "reason": "need answer", "next": "after"},
            {"id": "after", "type": "assign", "set": {"y": 2}, "next": "end"},
        ]
    else:
        count = job.workload.steps
        steps = [
            {
                "id": f"s{index}",
                "type": "assign",
                "set": {f"v{index}": payload(index)} if kind == GROWING else {f"x{index}": 1},
                "next": f"s{index + 1}" if index + 1 < count else "end",
            }
            for index in range(count)
        ]
    steps.append({"id": "end", "type": "end"})
    name = job.workload.name
    return {"id": name, "name": job.workload.title, "steps": steps}


def _store_url(job: Job) -> str:
    if job.storage == DURABLE:
        return f"sqlite:///{job.workdir / 'dwf.db'}?synchronous=full"
    return "memory://"


def _settings(job: Job) -> dict[str, str]:
    if job.storage != DURABLE:
        return {"storage": _store_url(job)}
    url = "sqlite:///<work dir>/dwf.db?synchronous=full"
    # The journal mode is stored in the file, so it can be read back after the store closed;
    # the sync level is per connection and is reported as requested.
    path = job.workdir / "dwf.db"
    if not path.exists():
        return {"storage": url, "synchronous": "FULL (requested)"}
    with sqlite3.connect(path) as conn:
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    return {"storage": url, "journal_mode": str(journal), "synchronous": "FULL (requested)"}
