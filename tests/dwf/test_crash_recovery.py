"""Durability, end to end: ``SIGKILL`` a real ``dwf`` process in the middle of a step, then
``dwf recover`` in a new process against the same SQLite store.

The services (``fixtures/crash/services.py``) log ``started``/``finished`` with the step's name and
idempotency key; a step with a ``gate`` blocks until the test creates ``release-<gate>``, which is
where the process gets killed. The properties checked (ARCHITECTURE.md section 3):

* every step committed before the kill runs exactly once;
* the interrupted step runs again (at-least-once), with the same idempotency key;
* the execution completes with the right output, and its timeline has each step completed once;
* positions reach inside loop iterations, parallel branches and child workflows;
* ``dwf recover`` leaves an execution alone while its owner process is alive.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dwf.dsl import load_workflow
from dwf.engine import Engine
from dwf.services import Services
from dwf.storage import Checkpoint, open_store

pytestmark = pytest.mark.slow

CRASH = Path(__file__).parent / "fixtures" / "crash"
DEADLINE_SECONDS = 20.0
POLL_SECONDS = 0.01


@dataclass(frozen=True)
class Call:
    event: str  # started | finished
    name: str
    key: str

    @property
    def step_path(self) -> str:
        return self.key.partition(":")[2]


@dataclass
class Lab:
    """One store, one log, and the ``dwf`` processes started against them."""

    dir: Path
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def store(self) -> str:
        return f"sqlite:///{self.dir}/dwf.db"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DWF_TEST_DIR": str(self.dir),
            "DWF_STORE": self.store,
            "DWF_SERVICES": str(CRASH / "services.py"),
            "XDG_DATA_HOME": str(self.dir / "xdg"),
        }

    def start(self, *args: str | os.PathLike[str]) -> subprocess.Popen[str]:
        """``dwf ARGS`` in the background (output to files, read when the test needs it)."""
        n = len(self.processes)
        with (
            open(self.dir / f"proc{n}.out", "w", encoding="utf-8") as out,
            open(self.dir / f"proc{n}.err", "w", encoding="utf-8") as err,
        ):
            proc = subprocess.Popen(
                [sys.executable, "-m", "dwf.cli", *(os.fspath(a) for a in args)],
                stdout=out,
                stderr=err,
                text=True,
                env=self.env,
            )
        self.processes.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[str]) -> tuple[str, str]:
        n = self.processes.index(proc)
        return (
            (self.dir / f"proc{n}.out").read_text(encoding="utf-8"),
            (self.dir / f"proc{n}.err").read_text(encoding="utf-8"),
        )

    def finish(self, proc: subprocess.Popen[str]) -> tuple[int, str, str]:
        code = proc.wait(timeout=DEADLINE_SECONDS)
        return (code, *self.output(proc))

    def dwf(self, *args: str | os.PathLike[str]) -> tuple[int, Any, str]:
        """Run ``dwf ARGS --json`` to the end; the exit code, the parsed JSON and stderr."""
        proc = self.start(*args, "--json")
        code, out, err = self.finish(proc)
        assert "Traceback" not in err
        return code, json.loads(out) if out.strip() else None, err

    def kill(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=DEADLINE_SECONDS) == -signal.SIGKILL

    def release(self, gate: str) -> None:
        (self.dir / f"release-{gate}").touch()

    def calls(self) -> list[Call]:
        log = self.dir / "calls.log"
        if not log.exists():
            return []
        # Only whole lines: a line being written while we read has no newline yet.
        lines = log.read_text(encoding="utf-8").split("\n")[:-1]
        return [Call(*line.split(" ")) for line in lines]

    def started(self) -> Counter[str]:
        """How many times each step path started."""
        return Counter(c.step_path for c in self.calls() if c.event == "started")

    def keys_of(self, name: str, event: str = "started") -> list[str]:
        return [c.key for c in self.calls() if c.name == name and c.event == event]

    def wait_until(
        self, what: str, condition: Callable[[], bool], *running: subprocess.Popen[str]
    ) -> None:
        """Poll ``condition`` until it holds; fail at the deadline or if a process exits."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not condition():
            for proc in running:
                if proc.poll() is not None:
                    out, err = self.output(proc)
                    pytest.fail(f"dwf exited ({proc.returncode}) before {what}:\n{out}\n{err}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting until {what}; calls: {self.calls()}")
            time.sleep(POLL_SECONDS)

    def committed(self, execution_id: str) -> list[tuple[str, str]]:
        """The (step path, action) audit entries the store holds now."""

        async def read() -> list[tuple[str, str]]:
            store = open_store(self.store)
            try:
                return [(e.step_path, e.action) for e in await store.entries(execution_id)]
            finally:
                await store.close()

        return asyncio.run(read())


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    for proc in lab.processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=DEADLINE_SECONDS)


def execution_of(lab: Lab, name: str) -> str:
    """The execution id in the key of the first call named ``name``."""
    return lab.keys_of(name)[0].partition(":")[0]


def completed_steps(timeline: list[dict[str, Any]]) -> Counter[str]:
    return Counter(row["step"] for row in timeline if row["action"] == "completed")


def test_a_run_killed_inside_a_step_recovers_and_reruns_only_that_step(lab: Lab) -> None:
    run = lab.start("run", CRASH / "six_steps.yml", "--json")
    lab.wait_until("s4 started", lambda: bool(lab.keys_of("s4")), run)
    lab.kill(run)
    execution_id = execution_of(lab, "s4")

    _, before, _ = lab.dwf("show", execution_id)
    lab.release("s4")
    code, recovered, err = lab.dwf("recover", execution_id)
    code_show, after, _ = lab.dwf("show", execution_id)

    # The crash lost the running step only: s1..s3 were committed, s4 was not.
    assert before["status"] == "running"
    assert [(r["step"], r["action"]) for r in before["timeline"]] == [
        ("s1", "completed"), ("s2", "completed"), ("s3", "completed"),
    ]  # fmt: skip
    assert code == 0, err
    assert recovered == [
        {
            "execution_id": execution_id,
            "status": "completed",
            "output": {"names": ["s1", "s2", "s3", "s4", "s5", "s6"]},
            "halt": None,
            "error": None,
        }
    ]
    started = lab.started()
    for step in ("s1", "s2", "s3", "s5", "s6"):
        assert started[step] == 1, f"{step} ran {started[step]} times"
    assert lab.keys_of("s4") == [f"{execution_id}:s4"] * 2  # again, with the same key
    assert lab.keys_of("s4", "finished") == [f"{execution_id}:s4"]
    assert code_show == 0
    assert after["status"] == "completed"
    assert completed_steps(after["timeline"]) == Counter(
        dict.fromkeys(("s1", "s2", "s3", "s4", "s5", "s6", "done"), 1)
    )
    assert [r["action"] for r in after["timeline"]].count("recovered") == 1


def test_kills_inside_a_loop_iteration_and_a_parallel_branch_resume_exactly_there(
    lab: Lab,
) -> None:
    items = [{"name": "i0"}, {"name": "i1"}, {"name": "i2", "gate": "loop"}, {"name": "i3"}]

    # First crash: inside iteration 2 of the loop.
    run = lab.start("run", CRASH / "loop_parallel.yml", "--input", json.dumps({"items": items}))
    lab.wait_until("iteration 2 started", lambda: bool(lab.keys_of("i2")), run)
    lab.kill(run)
    execution_id = execution_of(lab, "i2")

    # Second crash: the recovering process is killed inside branch b2 of the parallel step,
    # once the branches b1 and b3 are committed.
    lab.release("loop")
    first_recovery = lab.start("recover", "--json")

    def branches_committed() -> bool:
        if not lab.keys_of("b2"):
            return False
        done = lab.committed(execution_id)
        return ("fan/b1", "completed") in done and ("fan/b3", "completed") in done

    lab.wait_until("b1 and b3 committed, b2 started", branches_committed, first_recovery)
    lab.kill(first_recovery)

    lab.release("fan")
    code, recovered, err = lab.dwf("recover")
    _, shown, _ = lab.dwf("show", execution_id)

    assert code == 0, err
    (result,) = recovered
    assert result["execution_id"] == execution_id
    assert result["status"] == "completed"
    assert result["output"] == {
        "charges": [{"name": name} for name in ("i0", "i1", "i2", "i3")],
        "shipments": [{"name": name} for name in ("b1", "b2", "b3")],
    }
    started = lab.started()
    for path in ("items[0]/charge", "items[1]/charge", "items[3]/charge", "fan/b1", "fan/b3"):
        assert started[path] == 1, f"{path} ran {started[path]} times"
    assert lab.keys_of("i2") == [f"{execution_id}:items[2]/charge"] * 2
    assert lab.keys_of("b2") == [f"{execution_id}:fan/b2"] * 2
    expected = ["items[0]/charge", "items[1]/charge", "items[2]/charge", "items[3]/charge",
                "items", "fan/b1", "fan/b2", "fan/b3", "fan", "done"]  # fmt: skip
    assert completed_steps(shown["timeline"]) == Counter(expected)
    assert [r["action"] for r in shown["timeline"]].count("recovered") == 2


def test_a_kill_inside_a_child_workflow_resumes_inside_the_child(lab: Lab) -> None:
    run = lab.start("run", CRASH / "with_child.yml", "--json")
    lab.wait_until("the child's c2 started", lambda: bool(lab.keys_of("c2")), run)
    lab.kill(run)
    parent_id = execution_of(lab, "before")
    child_id = execution_of(lab, "c2")

    lab.release("child")
    code, recovered, err = lab.dwf("recover")
    _, child, _ = lab.dwf("show", child_id)

    assert code == 0, err
    assert [(r["execution_id"], r["status"], r["output"]) for r in recovered] == [
        (parent_id, "completed", {"child": ["c1", "c2"]})
    ]
    assert child_id != parent_id
    assert child["parent_id"] == parent_id
    assert lab.started() == Counter({"before": 1, "c1": 1, "c2": 2, "after": 1})
    assert lab.keys_of("c2") == [f"{child_id}:c2"] * 2
    assert completed_steps(child["timeline"]) == Counter({"c1": 1, "c2": 1, "done": 1})


def test_recover_leaves_an_execution_alone_while_its_owner_is_alive(lab: Lab) -> None:
    run = lab.start("run", CRASH / "six_steps.yml", "--json")
    lab.wait_until("s4 started", lambda: bool(lab.keys_of("s4")), run)
    execution_id = execution_of(lab, "s4")

    code_all, recovered_all, err_all = lab.dwf("recover")
    code_one, _, err_one = lab.dwf("recover", execution_id)
    still_running = run.poll() is None
    lab.release("s4")
    code, out, err = lab.finish(run)

    assert (code_all, recovered_all) == (0, []), err_all
    assert code_one == 2
    assert "running in a live process" in err_one
    assert still_running
    assert code == 0, err
    result = json.loads(out)
    assert result["execution_id"] == execution_id
    assert result["status"] == "completed"
    assert result["output"] == {"names": ["s1", "s2", "s3", "s4", "s5", "s6"]}
    assert lab.started() == Counter({f"s{n}": 1 for n in range(1, 7)})
    assert "recovered" not in [action for _, action in lab.committed(execution_id)]


class ProcessCrash(BaseException):
    """Stands for the process dying: nothing in the engine may catch it."""


class CrashingStore:
    """Delegates to a real store, but "dies" instead of writing the first matching checkpoint."""

    def __init__(self, inner: Any, crash_on: str) -> None:
        self._inner = inner
        self._crash_on = crash_on

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        if self._crash_on in checkpoint.set_state:
            raise ProcessCrash(self._crash_on)
        result: int = await self._inner.checkpoint(checkpoint)
        return result


# ``crash_on`` names a state key of the engine's bookkeeping: should the engine rename it, no
# checkpoint matches, nothing crashes, and the test fails at ``pytest.raises(ProcessCrash)``.
@pytest.mark.parametrize(
    ("crash_on", "expected"),
    [
        # the loop's save after iteration 1 (its result r1 and counter i)
        ("items|r1", {"charges": [{"name": "i0"}, {"name": "i1"}, {"name": "i2"}]}),
        # the parallel step's "branch b3 is done" marker
        ("fan/#b3|done", {"shipments": [{"name": "b1"}, {"name": "b2"}, {"name": "b3"}]}),
    ],
)
def test_a_crash_right_after_the_last_step_of_an_iteration_or_branch_keeps_its_output(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, crash_on: str, expected: dict[str, Any]
) -> None:
    # In-process and deterministic: the crash lands exactly between the checkpoint of the
    # frame's last step and the checkpoint that records the frame's output, a window that a
    # SIGKILL hits only by chance. A second engine, whose clock is past the lease, recovers.
    monkeypatch.setenv("DWF_TEST_DIR", str(lab.dir))
    lab.release("loop")
    lab.release("fan")
    workflow = load_workflow(CRASH / "loop_parallel.yml")
    services = Services.from_files([CRASH / "services.py"])
    items = [{"name": "i0"}, {"name": "i1"}, {"name": "i2"}]

    async def crash_then_recover() -> list[Any]:
        dying = Engine(CrashingStore(open_store(lab.store), crash_on), services=services)
        try:
            with pytest.raises(ProcessCrash):
                await dying.run(workflow, {"items": items})
        finally:
            await dying.close()
        later = Engine(lab.store, services=services, clock=lambda: time.time() + 3600)
        try:
            return await later.recover()
        finally:
            await later.close()

    (result,) = asyncio.run(crash_then_recover())

    assert result.status == "completed"
    paths = ["items[0]/charge", "items[1]/charge", "items[2]/charge", "fan/b1", "fan/b2", "fan/b3"]
    assert lab.started() == Counter(dict.fromkeys(paths, 1))  # nothing ran twice
    for name, value in expected.items():
        assert result.output[name] == value
