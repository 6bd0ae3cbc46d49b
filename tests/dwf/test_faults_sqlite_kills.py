"""Fault test 2: the kill test of test_faults_celery_kills.py on one machine without a broker:
200 pending executions of a 20-step workflow in a SQLite store, run by two ``dwf recover --loop``
processes, which are SIGKILLed at random moments, many times, and restarted. At the end every
execution completed, every step is committed exactly once, and no execution had two owners.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).parent
sys.path[:0] = [str(_TESTS / "storage"), str(_TESTS / "fixtures" / "faults")]

from lab import (  # noqa: E402
    SERVICES,
    Lab,
    assert_each_step_committed_once,
    assert_single_owner,
    count_status,
    kill_at_random,
    start_pending,
)

pytestmark = pytest.mark.slow

EXECUTIONS = 200
#: The kill schedule; set $DWF_TEST_FAULT_SEED to try others.
SEED = int(os.environ.get("DWF_TEST_FAULT_SEED", "20201"))


def start_loop(lab: Lab, name: str) -> None:
    lab.start(name, "recover", "--loop", "0.2", "--services", SERVICES)


def test_200_executions_complete_exactly_once_while_recover_loops_are_killed_at_random(
    tmp_path: Path,
) -> None:
    lab = Lab(tmp_path, f"sqlite:///{tmp_path}/dwf.db")
    execution_ids = start_pending(lab, EXECUTIONS, pause=0.003)
    loops = ["r1", "r2"]
    try:
        for name in loops:
            start_loop(lab, name)
        lab.wait_until("the loops started steps", lambda: lab.steps_started() > 50)

        kill_at_random(
            lab, loops, lambda name: start_loop(lab, name),
            done=lambda: count_status(lab, "completed") == EXECUTIONS,
            min_kills=10, pause=(0.3, 1.5), seed=SEED, timeout=150,
        )  # fmt: skip
    finally:
        lab.stop_all()

    assert count_status(lab, "completed") == EXECUTIONS
    assert_each_step_committed_once(lab, execution_ids)
    handovers = assert_single_owner(lab, lab.calls())
    assert handovers > 0, lab.logs()
    assert lab.kills >= 10
