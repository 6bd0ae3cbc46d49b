"""The queue across processes: ``dwf run/resume --broker``, ``dwf wait``, ``dwf cancel`` and a
real ``dwf worker`` (Celery, Redis broker, PostgreSQL store), plus the worker's command line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_TESTS = Path(__file__).parent
sys.path[:0] = [str(_TESTS / "storage"), str(_TESTS / "fixtures" / "faults")]

from lab import HERE, SERVICES, TWENTY_STEPS, Lab, start_pending  # noqa: E402
from servers import postgres_server, redis_server, with_options  # noqa: E402

TIMEOUT = 30.0


def dwf_cli(
    lab: Lab | None, *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    """``dwf ARGS`` to the end: the exit code, the JSON it printed (if any) and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "dwf.cli", *(os.fspath(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env if env is not None else (lab.env if lab else None),
        check=False,
    )
    out = done.stdout.strip()
    try:
        parsed = json.loads(out) if out else None
    except json.JSONDecodeError:
        parsed = out
    return done.returncode, parsed, done.stderr


# -- the command line, without servers ----------------------------------------------------------


def test_dwf_worker_without_the_celery_extra_says_what_to_install(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['celery'] = None\n"  # as if celery were not installed
        "from dwf.cli import main\n"
        f"sys.exit(main(['worker', '--broker', 'redis://127.0.0.1:1/0', '--store', "
        f"'sqlite:///{tmp_path}/x.db']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 2
    assert 'pip install "dwf[celery]"' in done.stderr
    assert "Traceback" not in done.stderr


def test_dwf_worker_needs_a_broker_and_a_store(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DWF_BROKER", "DWF_STORE")}
    code, _, err = dwf_cli(None, "worker", env=env)
    assert code == 2
    assert err.strip() == "dwf: dwf worker needs a broker: --broker URL (or $DWF_BROKER)"
    code, _, err = dwf_cli(None, "worker", "--broker", "redis://127.0.0.1:1/0", env=env)
    assert code == 2
    assert "needs the store the producers use" in err


def test_dwf_recover_loop_refuses_an_execution_id_and_a_bad_interval(tmp_path: Path) -> None:
    env = {**os.environ, "DWF_STORE": f"sqlite:///{tmp_path}/x.db"}
    code, _, err = dwf_cli(None, "recover", "abc", "--loop", "1", env=env)
    assert (code, "leave out the execution id" in err) == (2, True)
    code, _, err = dwf_cli(None, "recover", "--loop", "0", env=env)
    assert (code, "seconds > 0" in err) == (2, True)


def test_dwf_recover_pending_after_starts_old_pending_executions(tmp_path: Path) -> None:
    lab = Lab(tmp_path, f"sqlite:///{tmp_path}/dwf.db")
    (execution_id,) = start_pending(lab, 1, pause=0)
    code, nothing, _ = dwf_cli(lab, "recover", "--json", "--services", SERVICES)
    code_2, started, err = dwf_cli(
        lab, "recover", "--pending-after", "0", "--json", "--services", SERVICES
    )
    assert (code, nothing) == (0, [])
    assert code_2 == 0, err
    assert [(r["execution_id"], r["status"]) for r in started] == [(execution_id, "completed")]


def test_dwf_wait_gives_up_after_its_timeout(tmp_path: Path) -> None:
    lab = Lab(tmp_path, f"sqlite:///{tmp_path}/dwf.db")
    (execution_id,) = start_pending(lab, 1, pause=0)
    code, _, err = dwf_cli(lab, "wait", execution_id, "--timeout", "0.2")
    assert code == 1
    assert f"execution {execution_id} is still pending after 0.2 s" in err


# -- with a worker -------------------------------------------------------------------------------

needs_celery_and_postgres = pytest.mark.skipif(
    importlib.util.find_spec("celery") is None or importlib.util.find_spec("psycopg") is None,
    reason='needs the celery and postgres extras: pip install "dwf[celery,postgres]"',
)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def lab(tmp_path: Path, postgres_url: str) -> Iterator[Lab]:
    lab = Lab(tmp_path, with_options(postgres_url, schema=f"t_{uuid.uuid4().hex[:12]}"))
    yield lab
    lab.stop_all()


def start_worker(lab: Lab, broker: str, queue: str) -> None:
    lab.start(
        "worker", "worker", "--broker", broker, "--queue", queue, "--services", SERVICES,
        "--lease-seconds", "1.5", "--recover-interval", "0.5",
    )  # fmt: skip


@needs_celery_and_postgres
@pytest.mark.slow
def test_run_and_resume_through_the_broker_return_at_once_and_a_worker_does_the_work(
    lab: Lab, redis_url: str
) -> None:
    queue = f"dwf-{uuid.uuid4().hex[:8]}"
    queued = ("--broker", redis_url, "--queue", queue, "--json")
    start_worker(lab, redis_url, queue)

    code, enqueued, err = dwf_cli(lab, "run", HERE / "approval.yml", *queued)
    assert (code, enqueued["status"]) == (0, "queued"), err
    execution_id = enqueued["execution_id"]
    code, halted, err = dwf_cli(lab, "wait", execution_id, "--timeout", "20", "--json")
    assert (code, halted["status"]) == (0, "halted"), err + lab.logs()

    code, resumed, err = dwf_cli(
        lab, "resume", execution_id, "--approve", "--by", "alice", *queued, "--wait", "20"
    )
    assert code == 0, err + lab.logs()
    assert (resumed["status"], resumed["output"]) == ("completed", "shipped")

    code, _, err = dwf_cli(lab, "resume", execution_id, "--approve", *queued)
    assert code == 2
    assert "only halted executions can be resumed" in err


@needs_celery_and_postgres
@pytest.mark.slow
def test_dwf_cancel_stops_a_run_on_a_worker_at_its_next_step(lab: Lab, redis_url: str) -> None:
    queue = f"dwf-{uuid.uuid4().hex[:8]}"
    start_worker(lab, redis_url, queue)
    code, enqueued, err = dwf_cli(
        lab, "run", TWENTY_STEPS, "--input", '{"pause": 0.3}', "--broker", redis_url,
        "--queue", queue, "--json",
    )  # fmt: skip
    assert code == 0, err
    execution_id = enqueued["execution_id"]
    lab.wait_until("two steps ran", lambda: lab.steps_started() >= 2, timeout=TIMEOUT)

    code, cancelled, err = dwf_cli(lab, "cancel", execution_id, "--json")
    assert code == 0, err
    assert cancelled["status"] == "running"  # requested; the worker stops at a step boundary
    code, final, err = dwf_cli(lab, "wait", execution_id, "--timeout", "20", "--json")

    assert (code, final["status"]) == (0, "cancelled"), err + lab.logs()
    ran = lab.steps_started()
    assert 2 <= ran < 20  # the worker stopped long before the end
    code, shown, _ = dwf_cli(lab, "show", execution_id, "--json")
    completed = [row["step"] for row in shown["timeline"] if row["action"] == "completed"]
    assert len(completed) in (ran, ran - 1)  # the step running at the cancel may finish


@needs_celery_and_postgres
@pytest.mark.slow
def test_a_cancelled_execution_is_left_alone_when_its_queued_job_reaches_a_worker(
    lab: Lab, redis_url: str
) -> None:
    queue = f"dwf-{uuid.uuid4().hex[:8]}"
    code, enqueued, err = dwf_cli(
        lab, "run", TWENTY_STEPS, "--broker", redis_url, "--queue", queue, "--json"
    )
    assert code == 0, err
    execution_id = enqueued["execution_id"]
    code, cancelled, err = dwf_cli(lab, "cancel", execution_id, "--json")
    assert (code, cancelled["status"]) == (0, "cancelled"), err

    start_worker(lab, redis_url, queue)  # now the job is delivered
    lab.wait_until(
        "the worker skipped the job",
        lambda: f"run of execution {execution_id}: skipped" in lab.logs(tail=None),
        timeout=TIMEOUT,
    )
    code, shown, _ = dwf_cli(lab, "show", execution_id, "--json")
    assert shown["status"] == "cancelled"
    assert lab.steps_started() == 0
