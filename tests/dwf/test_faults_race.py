"""Two processes never run the same execution at the same time.

Six ``dwf recover --loop`` processes race for one pending execution; whenever one of them owns
it and is inside a step, it is SIGKILLed and the others race to take it over. The step log
shows one owner at a time (a new owner starts only after the previous one died) and the audit
log every step committed once. Against SQLite (one machine) and PostgreSQL.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
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
    start_pending,
)
from servers import postgres_server, with_options  # noqa: E402

pytestmark = pytest.mark.slow

RACERS = 6
KILLS = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/dwf.db"
        return
    pytest.importorskip("psycopg", reason='needs the postgres extra: pip install "dwf[postgres]"')
    with postgres_server() as url:
        yield with_options(url, schema=f"t_{uuid.uuid4().hex[:12]}")


def test_processes_racing_for_one_execution_never_run_it_at_the_same_time(
    tmp_path: Path, store_url: str
) -> None:
    lab = Lab(tmp_path, store_url)
    (execution_id,) = start_pending(lab, 1, pause=0.05)
    names = [f"racer{n}" for n in range(RACERS)]
    try:
        for name in names:
            lab.start(name, "recover", "--loop", "0.05", "--services", SERVICES)
        for kill in range(KILLS):
            # Wait until some racer is inside a step, then kill the owner right there.
            started_before = lab.steps_started()
            lab.wait_until(
                f"a step ran after kill {kill}", lambda n=started_before: lab.steps_started() > n
            )
            owner_pid = lab.calls()[-1].pid
            (owner,) = [n for n in names if lab.processes[n].pid == owner_pid]
            lab.kill(owner)
            names.remove(owner)
        lab.wait_until("the execution completed", lambda: count_status(lab, "completed") == 1)
    finally:
        lab.stop_all()

    assert_each_step_committed_once(lab, [execution_id])
    calls = lab.calls()
    assert assert_single_owner(lab, calls) == KILLS  # one new owner after each kill
    assert len({c.pid for c in calls}) == KILLS + 1
