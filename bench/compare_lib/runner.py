"""``bench/compare``: run every workload on every system, round by round, and write the report.

Each (round, workload, storage, system) is one worker process; within a round the systems take
turns in an order that rotates from round to round, so slow drift of the machine (page cache,
thermal state, background work) spreads over all of them instead of landing on one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import report
from .machine import describe_machine
from .peers_install import PeerInstallError, ensure_peers
from .stats import summarise
from .workloads import STORAGES, Job, Workload, workloads

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
SYSTEMS = ("dwf", "langgraph", "dbos", "floor")
PEERS = ("langgraph", "dbos")
DEFAULT_OUT = REPO_DIR / "docs" / "benchmarks.md"
QUICK_OUT = BENCH_DIR / ".work" / "benchmarks-quick.md"
WORKER_TIMEOUT_SEC = 600


class WorkerError(RuntimeError):
    """A worker process failed; the message ends with the last lines of its stderr."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/compare",
        description="Compare dwf with LangGraph, DBOS and a plain-SQLite floor (issue 9).",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (CI smoke)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument("--workloads", default="", help="comma-separated subset of workloads")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 7, quick 1)")
    parser.add_argument("--out", type=Path, default=None, help="report path")
    args = parser.parse_args(argv)
    args.systems = [name for name in args.systems.split(",") if name]
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 7
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    chosen = _select_workloads(workloads(quick=args.quick), args.workloads)
    interpreters, skipped = _interpreters(args.systems)
    systems = [name for name in args.systems if name in interpreters]
    for name, reason in skipped.items():
        print(f"skipping {name}: {reason}", file=sys.stderr)

    started = time.monotonic()
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    failures: dict[tuple[str, str, str], str] = {}
    workroot = BENCH_DIR / ".work" / time.strftime("run-%Y%m%d-%H%M%S")
    for round_index in range(args.rounds):
        shift = round_index % max(1, len(systems))
        order = systems[shift:] + systems[:shift]
        for workload in chosen:
            for storage in STORAGES:
                for system in order:
                    key = (system, workload.name, storage)
                    if key in failures:
                        continue
                    workdir = workroot / f"r{round_index}-{workload.name}-{storage}-{system}"
                    job = Job(system, workload, storage, workdir)
                    try:
                        result = _run_worker(job, interpreters[system])
                    except WorkerError as error:
                        failures[key] = str(error)
                        print(f"FAILED {' '.join(key)}: {error}", file=sys.stderr)
                        continue
                    results[key].append(result)
                    _progress(round_index, args.rounds, job, result)
    shutil.rmtree(workroot, ignore_errors=True)

    context = report.Context(
        quick=args.quick,
        rounds=args.rounds,
        systems=args.systems,
        workloads=chosen,
        summaries={
            key: summarise(_workload(chosen, key[1]), runs) for key, runs in results.items()
        },
        raw=dict(results),
        skipped=skipped,
        failures=failures,
        machine=describe_machine(interpreters, BENCH_DIR / ".work"),
        elapsed_sec=time.monotonic() - started,
        command=" ".join(["bench/compare", *(argv if argv is not None else sys.argv[1:])]),
    )
    raw_path = BENCH_DIR / ".work" / "last-results.json"
    raw_path.write_text(json.dumps([r for runs in results.values() for r in runs]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.render(context))
    print(f"wrote {args.out} (raw measurements: {raw_path})", file=sys.stderr)
    return 1 if failures else 0


def _select_workloads(available: list[Workload], names: str) -> list[Workload]:
    if not names:
        return available
    wanted = names.split(",")
    unknown = sorted(set(wanted) - {w.name for w in available})
    if unknown:
        known = ", ".join(w.name for w in available)
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}; known: {known}")
    return [w for w in available if w.name in wanted]


def _workload(chosen: list[Workload], name: str) -> Workload:
    return next(w for w in chosen if w.name == name)


def _interpreters(requested: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Which interpreter runs each system, and why any requested system is skipped."""
    interpreters: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in requested:
        if name == "floor":
            interpreters[name] = sys.executable
        elif name == "dwf":
            reason = _dwf_missing_reason()
            if reason is None:
                interpreters[name] = sys.executable
            else:
                skipped[name] = reason
    if any(name in PEERS for name in requested):
        try:
            peer_python = str(ensure_peers(BENCH_DIR / ".peers"))
        except (PeerInstallError, OSError) as error:
            peer_python = ""
            for name in PEERS:
                if name in requested:
                    skipped[name] = f"could not install the peers: {error}"
        for name in PEERS:
            if name in requested and peer_python:
                interpreters[name] = peer_python
    return interpreters, skipped


def _dwf_missing_reason() -> str | None:
    """Ask a fresh project interpreter whether dwf has its engine yet."""
    probe = "from compare_lib.dwf_system import missing_api; print(missing_api() or '')"
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=_env("dwf"),
        cwd=REPO_DIR,
        check=False,
    )
    if completed.returncode != 0:
        return "probing dwf failed: " + _tail(completed.stderr)
    return completed.stdout.strip() or None


def _env(system: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(BENCH_DIR)]
    if system in ("dwf", "floor"):
        paths.append(str(REPO_DIR))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # The peers must not phone home while being measured.
    env["LANGSMITH_TRACING"] = "false"
    env["LANGCHAIN_TRACING_V2"] = "false"
    return env


def _run_worker(job: Job, python: str) -> dict[str, Any]:
    job.workdir.mkdir(parents=True, exist_ok=True)
    try:
        completed = subprocess.run(
            [python, "-m", "compare_lib.worker", job.to_json()],
            capture_output=True,
            text=True,
            env=_env(job.system),
            cwd=job.workdir,
            timeout=WORKER_TIMEOUT_SEC,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise WorkerError(f"timed out after {WORKER_TIMEOUT_SEC} s") from error
    finally:
        shutil.rmtree(job.workdir, ignore_errors=True)
    if completed.returncode != 0:
        raise WorkerError(f"exit code {completed.returncode}: {_tail(completed.stderr)}")
    lines = completed.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as error:
        raise WorkerError(f"no JSON result on stdout: {_tail(completed.stdout)}") from error
    if not result["run_ns"] or min(result["run_ns"]) <= 0:
        raise WorkerError(f"no positive measurements: {result['run_ns']}")
    return result


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _progress(round_index: int, rounds: int, job: Job, result: dict[str, Any]) -> None:
    summary = summarise(job.workload, [result])
    print(
        f"[round {round_index + 1}/{rounds}] {job.workload.name:<14} {job.storage:<8} "
        f"{job.system:<10} {summary.per_unit.median:10.1f} µs/{job.workload.unit}",
        file=sys.stderr,
    )
