"""One worker process: measure one job and print one JSON line.

Usage: ``python -m compare_lib.worker '<job as JSON>'``, with ``bench/`` on ``PYTHONPATH``. The
runner starts one such process per (system, workload, storage, round) so that imports, caches and
database files never leak from one measurement into the next.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from .workloads import Job

SYSTEM_MODULES = {
    "dwf": "compare_lib.dwf_system",
    "langgraph": "compare_lib.peers_langgraph",
    "dbos": "compare_lib.peers_dbos",
    "floor": "compare_lib.floor",
}


def run_job(job: Job) -> dict[str, Any]:
    """Measure ``job`` in this process and return the worker's JSON object."""
    module = importlib.import_module(SYSTEM_MODULES[job.system])
    measurement = module.run(job)
    return {
        "system": job.system,
        "workload": job.workload.name,
        "storage": job.storage,
        **measurement.to_dict(),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m compare_lib.worker '<job JSON>'", file=sys.stderr)
        return 2
    result = run_job(Job.from_json(argv[0]))
    # The runner reads the last line of stdout; libraries may print before it.
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
