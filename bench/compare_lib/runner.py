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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import report
from .machine import describe_machine
from .peers_install import PeerInstallError, ensure_peers
from .report import Key
from .stats import summarise
from .workloads import STORAGES, Job, Workload, workloads

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
SYSTEMS = ("dwf", "langgraph", "dbos", "floor")
PEERS = ("langgraph", "dbos")
DEFAULT_OUT = REPO_DIR / "docs" / "benchmarks.md"
WORK_DIR = BENCH_DIR / ".work"  # git-ignored: durable files live here, on the repo's disk
QUICK_OUT = WORK_DIR / "benchmarks-quick.md"
WORKER_TIMEOUT_SEC = 600
TIMED_OUT = "timed out"


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
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=WORK_DIR,
        help="where the durable database files and the raw results go (default bench/.work)",
    )
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
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    chosen = _select_workloads(workloads(quick=args.quick), args.workloads)
    interpreters, skipped = _interpreters(args.systems)
    for name, reason in skipped.items():
        print(f"skipping {name}: {reason}", file=sys.stderr)

    started = time.monotonic()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    measured = [name for name in args.systems if name in interpreters]
    rounds = _run_rounds(args, chosen, interpreters, measured)
    context = report.Context(
        quick=args.quick,
        rounds=args.rounds,
        systems=args.systems,
        workloads=chosen,
        summaries={
            key: summarise(_workload(chosen, key[1]), runs) for key, runs in rounds.results.items()
        },
        raw=rounds.results,
        skipped=skipped,
        failures=rounds.failures,
        machine=describe_machine(interpreters, args.work_dir, rounds.loads),
        elapsed_sec=time.monotonic() - started,
        command=" ".join(["bench/compare", *argv]),
    )
    raw_path = args.work_dir / "last-results.json"
    raw_path.write_text(json.dumps([r for runs in rounds.results.values() for r in runs]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.render(context))
    print(f"wrote {args.out} (raw measurements: {raw_path})", file=sys.stderr)
    return 1 if rounds.failures else 0


@dataclass
class Rounds:
    """What all rounds produced: results and failures by (system, workload, storage)."""

    results: dict[Key, list[dict[str, Any]]] = field(default_factory=dict)
    failures: dict[Key, list[str]] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)


def _run_rounds(
    args: argparse.Namespace,
    chosen: list[Workload],
    interpreters: dict[str, str],
    systems: list[str],
) -> Rounds:
    """Every job of every round, the systems in an order that rotates by one each round."""
    outcome = Rounds(loads=[os.getloadavg()[0]])
    workroot = args.work_dir.resolve() / time.strftime("run-%Y%m%d-%H%M%S")
    for round_index in range(args.rounds):
        shift = round_index % max(1, len(systems))
        order = systems[shift:] + systems[:shift]
        for workload in chosen:
            for storage in STORAGES:
                for system in order:
                    key = (system, workload.name, storage)
                    if any(TIMED_OUT in error for error in outcome.failures.get(key, [])):
                        continue  # a hang would cost the full timeout again every round
                    workdir = workroot / f"r{round_index}-{workload.name}-{storage}-{system}"
                    job = Job(system, workload, storage, workdir)
                    try:
                        result = _run_worker(job, interpreters[system])
                    except WorkerError as error:
                        # Kept going in later rounds: dwf may be mid-edit in the same tree.
                        outcome.failures.setdefault(key, []).append(str(error))
                        print(f"FAILED {' '.join(key)}: {error}", file=sys.stderr)
                        continue
                    outcome.results.setdefault(key, []).append(result)
                    outcome.loads.append(os.getloadavg()[0])
                    _progress(round_index, args.rounds, job, result)
    shutil.rmtree(workroot, ignore_errors=True)
    return outcome


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
        raise WorkerError(f"{TIMED_OUT} after {WORKER_TIMEOUT_SEC} s") from error
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
