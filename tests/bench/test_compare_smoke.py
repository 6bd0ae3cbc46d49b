"""Smoke tests of the benchmark harness (bench/compare): measurements are produced, nothing more.

No timing is asserted and nothing is installed: the peers (LangGraph, DBOS) are not part of the
unit test suite. The floor and dwf run at the quick size through the worker entry point.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_DIR / "bench"


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    names = ("workloads", "worker", "stats", "report", "dwf_system")
    return {name: importlib.import_module(f"compare_lib.{name}") for name in names}


def _jobs(harness: dict[str, ModuleType], system: str, tmp_path: Path) -> list[Any]:
    workloads = harness["workloads"]
    return [
        workloads.Job(system, workload, storage, tmp_path / f"{workload.name}-{storage}")
        for workload in workloads.workloads(quick=True)
        for storage in workloads.STORAGES
    ]


def _assert_positive_measurements(result: dict[str, Any], job: Any) -> None:
    assert len(result["run_ns"]) == job.workload.runs
    assert all(ns > 0 for ns in result["run_ns"])
    if job.workload.kind == "growing":
        assert len(result["position_ns"]) == job.workload.runs
        for positions in result["position_ns"]:
            assert len(positions) == job.workload.steps
            assert all(ns > 0 for ns in positions)
    assert result["settings"]


def _run_all(harness: dict[str, ModuleType], system: str, tmp_path: Path) -> list[Any]:
    results = []
    for job in _jobs(harness, system, tmp_path):
        job.workdir.mkdir(parents=True)
        result = harness["worker"].run_job(job)
        _assert_positive_measurements(result, job)
        results.append((job, result))
    return results


def test_the_floor_produces_positive_measurements_for_every_quick_workload(
    harness: dict[str, ModuleType], tmp_path: Path
) -> None:
    _run_all(harness, "floor", tmp_path)


def test_dwf_produces_positive_measurements_for_every_quick_workload(
    harness: dict[str, ModuleType], tmp_path: Path
) -> None:
    reason = harness["dwf_system"].missing_api()
    if reason is not None:
        pytest.skip(f"dwf cannot be benchmarked yet: {reason}")
    _run_all(harness, "dwf", tmp_path)


def test_the_report_renders_every_workload_from_floor_results(
    harness: dict[str, ModuleType], tmp_path: Path
) -> None:
    report, stats = harness["report"], harness["stats"]
    chosen = harness["workloads"].workloads(quick=True)
    raw = {
        (job.system, job.workload.name, job.storage): [result]
        for job, result in _run_all(harness, "floor", tmp_path)
    }
    context = report.Context(
        quick=True,
        rounds=1,
        systems=["dwf", "floor"],
        workloads=chosen,
        summaries={
            key: stats.summarise(next(w for w in chosen if w.name == key[1]), results)
            for key, results in raw.items()
        },
        raw=raw,
        skipped={"dwf": "not under test here"},
        failures={},
        machine={"CPUs": "1"},
        elapsed_sec=1.0,
        command="bench/compare --quick",
    )
    text = report.render(context)
    for workload in chosen:
        assert f"### {workload.name}:" in text
    assert "| floor |" in text
    assert "dwf skipped: not under test here" in text


@pytest.mark.slow
def test_bench_compare_quick_on_the_floor_writes_a_report(
    tmp_path: Path,
) -> None:
    out = tmp_path / "benchmarks.md"
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "compare_lib", "--quick", "--systems", "floor"),
            *("--out", str(out), "--work-dir", str(tmp_path / "work")),
        ],
        cwd=REPO_DIR,
        env={"PYTHONPATH": str(BENCH_DIR), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| floor |" in out.read_text()
    assert (tmp_path / "work" / "last-results.json").exists()
    assert "floor" in completed.stderr  # one progress line per job
