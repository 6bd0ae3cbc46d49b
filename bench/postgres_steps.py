"""Per-step cost of dwf on PostgreSQL against a plain PostgreSQL commit per step, and the
throughput of one and two ``dwf worker`` processes.

    python bench/postgres_steps.py                      # throwaway durable PostgreSQL and Redis
    python bench/postgres_steps.py --postgres URL --redis URL
    python bench/postgres_steps.py --json               # one JSON object, for scripts

**Per step.** A workflow of 20 ``call`` steps (an async service that returns ``{"n": i}``),
run by one engine in this process. The floor is what any durable engine must pay at least: one
``INSERT`` of a small JSON row and one ``COMMIT`` per step, with the same driver (psycopg 3,
async), on the same server, in the same run; the two are interleaved round by round so that
machine noise hits both alike. The goal (ARCHITECTURE.md, docs/deploy.md) is dwf within 1.5x
of the floor.

**Throughput.** 400 executions of the same workflow queued through a Redis broker (Celery)
to one, then two ``dwf worker`` processes (threads pool, concurrency 8) sharing the database:
executions and steps per second, from the first enqueue to the last completion.

Without URLs, a throwaway PostgreSQL cluster is started with durable settings (``fsync=on``,
``synchronous_commit=on``: every commit waits for the disk) and a ``redis-server``, from the
machine's binaries (as the tests do: tests/dwf/storage/servers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "dwf" / "storage"))

STEPS = 20
SERVICE = """
class Bench:
    async def step(self, n: int) -> dict:
        return {"n": n}
"""


def workflow_text() -> str:
    lines = ["id: bench_steps", "name: Twenty call steps", "steps:"]
    for n in range(1, STEPS + 1):
        nxt = f"s{n + 1}" if n < STEPS else "done"
        lines.append(
            f"  - {{id: s{n}, type: call, service: Bench, method: step, input: {{n: {n}}}, "
            f"output: r{n}, next: {nxt}}}"
        )
    lines.append("  - {id: done, type: end, result: $r20}")
    return "\n".join(lines) + "\n"


# -- servers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def durable_postgres() -> Iterator[str]:
    """A throwaway cluster whose commits wait for the disk (unlike the tests' fsync=off)."""
    from servers import _postgres_user, _run, free_port, postgres_bindir

    bindir = postgres_bindir()
    if bindir is None:
        sys.exit("PostgreSQL binaries not found: install postgresql or pass --postgres URL")
    user = _postgres_user()
    base = Path(tempfile.mkdtemp(prefix="dwf-bench-pg-"))
    port = free_port()
    started = False
    try:
        if user is not None:
            os.chown(base, user.pw_uid, user.pw_gid)
        _run(
            [str(bindir / "initdb"), "-D", str(base / "data"), "-U", "dwf", "-A", "trust",
             "-E", "UTF8", "--locale=C"],
            user, "initdb",
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c max_connections=60"
        _run(
            [str(bindir / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "log"),
             "-o", options, "-w", "start"],
            user, "pg_ctl start", log=base / "log",
        )  # fmt: skip
        started = True
        yield f"postgresql://dwf@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _run(
                [str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "-w", "stop"],
                user, "pg_ctl stop",
            )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def maybe(url: str | None, start: Any) -> Iterator[str]:
    if url:
        yield url
    else:
        with start() as started:
            yield started


# -- per step ------------------------------------------------------------------------------------


async def per_step(postgres: str, rounds: int, runs: int) -> dict[str, Any]:
    import psycopg

    import dwf
    from dwf.services import Services

    workdir = Path(tempfile.mkdtemp(prefix="dwf-bench-"))
    (workdir / "services.py").write_text(SERVICE)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    store_url = f"{postgres}{'&' if '?' in postgres else '?'}schema={schema}"
    engine = dwf.Engine(store_url, services=Services.from_files([workdir / "services.py"]))
    workflow = dwf.parse_workflow(workflow_text())
    conn = await psycopg.AsyncConnection.connect(postgres, autocommit=True)
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    await conn.execute(
        f"CREATE TABLE {schema}.floor (id BIGSERIAL PRIMARY KEY, run TEXT NOT NULL,"
        " step TEXT NOT NULL, data JSON NOT NULL)"
    )

    async def dwf_round() -> float:
        started = time.perf_counter()
        for _ in range(runs):
            result = await engine.run(workflow)
            assert result.status == "completed", result
        return (time.perf_counter() - started) / (runs * STEPS)

    async def floor_round() -> float:
        started = time.perf_counter()
        for _ in range(runs):
            run_id = uuid.uuid4().hex
            for n in range(1, STEPS + 1):
                await conn.execute(
                    f"INSERT INTO {schema}.floor (run, step, data) VALUES (%s, %s, %s)",
                    (run_id, f"s{n}", json.dumps({"n": n})),
                )
        return (time.perf_counter() - started) / (runs * STEPS)

    try:
        await dwf_round()  # warm up: pool, schema, prepared statements
        await floor_round()
        dwf_ms, floor_ms = [], []
        for _ in range(rounds):
            dwf_ms.append(await dwf_round() * 1000)
            floor_ms.append(await floor_round() * 1000)
        settings = {}
        for name in ("fsync", "synchronous_commit", "server_version"):
            cursor = await conn.execute(f"SHOW {name}")
            row = await cursor.fetchone()
            settings[name] = row[0] if row else None
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
        await engine.close()
        shutil.rmtree(workdir, ignore_errors=True)
    dwf_median, floor_median = statistics.median(dwf_ms), statistics.median(floor_ms)
    return {
        "steps_per_run": STEPS,
        "runs_per_round": runs,
        "rounds": rounds,
        "dwf_ms_per_step": round(dwf_median, 3),
        "floor_ms_per_step": round(floor_median, 3),
        "ratio": round(dwf_median / floor_median, 2),
        "dwf_rounds_ms": [round(x, 3) for x in dwf_ms],
        "floor_rounds_ms": [round(x, 3) for x in floor_ms],
        "server": settings,
    }


# -- throughput ----------------------------------------------------------------------------------


def throughput(postgres: str, redis: str, executions: int, workers: int) -> dict[str, Any]:
    import dwf
    from dwf.runners.celery_app import CeleryAdapter
    from dwf.runners.queue import QueueRunner

    workdir = Path(tempfile.mkdtemp(prefix="dwf-bench-"))
    (workdir / "services.py").write_text(SERVICE)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    store_url = f"{postgres}{'&' if '?' in postgres else '?'}schema={schema}"
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    workflow = dwf.parse_workflow(workflow_text())
    procs, logs = [], []
    for n in range(workers):
        log = open(workdir / f"worker{n}.log", "wb")  # noqa: SIM115 (closed in the finally)
        logs.append(log)
        command = [sys.executable, "-m", "dwf.cli", "worker", "--store", store_url]
        command += ["--broker", redis, "--queue", queue, "--concurrency", "8"]
        command += ["--services", str(workdir / "services.py"), "--loglevel", "WARNING"]
        procs.append(
            subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        )

    async def measure() -> tuple[float, float]:
        engine = dwf.Engine(store_url)
        runner = QueueRunner(engine, CeleryAdapter(redis, queue=queue))
        try:
            # Warm up: every worker connected and ready (one execution each, waited for).
            warm = [await runner.enqueue_run(workflow) for _ in range(workers * 2)]
            for execution_id in warm:
                await runner.wait(execution_id, timeout=60)
            started, busy_before = time.perf_counter(), _machine_busy()
            ids = [await runner.enqueue_run(workflow) for _ in range(executions)]
            for execution_id in ids:
                result = await runner.wait(execution_id, timeout=300)
                assert result.status == "completed", result
            return time.perf_counter() - started, _machine_busy() - busy_before
        finally:
            await runner.aclose()
            await engine.close()

    worker_cpu = 0.0
    try:
        elapsed, busy = asyncio.run(measure())
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            _, _, usage = os.wait4(proc.pid, 0)  # the worker's CPU time, warm-up included
            proc.returncode = 0
            worker_cpu += usage.ru_utime + usage.ru_stime
        for log in logs:
            log.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "workers": workers,
        "executions": executions,
        "seconds": round(elapsed, 2),
        "executions_per_second": round(executions / elapsed, 1),
        "steps_per_second": round(executions * STEPS / elapsed),
        # CPU seconds per second of the measurement: of the workers, and of the whole machine
        # (PostgreSQL, Redis, this process and anything else running)
        "worker_cpu_per_second": round(worker_cpu / elapsed, 2),
        "machine_cpu_per_second": round(busy / elapsed, 2),
    }


def _machine_busy() -> float:
    """CPU seconds all processors spent busy since boot (Linux), or 0."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="use this server (default: start one)")
    parser.add_argument("--redis", metavar="URL", help="use this broker (default: start one)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20, help="executions per round")
    parser.add_argument("--executions", type=int, default=400, help="for the throughput part")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from servers import redis_server

    report: dict[str, Any] = {"cpus": os.cpu_count()}
    with maybe(args.postgres, durable_postgres) as postgres:
        report["per_step"] = asyncio.run(per_step(postgres, args.rounds, args.runs))
        if not args.skip_throughput:
            with maybe(args.redis, redis_server) as redis:
                report["throughput"] = [
                    throughput(postgres, redis, args.executions, workers) for workers in (1, 2)
                ]
    if args.json:
        print(json.dumps(report))
        return
    p = report["per_step"]
    server = p["server"]
    print(
        f"PostgreSQL {server['server_version']} (fsync={server['fsync']}, synchronous_commit="
        f"{server['synchronous_commit']}), {report['cpus']} CPUs"
    )
    print(f"per step, median of {p['rounds']} rounds x {p['runs_per_round']} runs x {STEPS} steps:")
    print(f"  dwf call step        {p['dwf_ms_per_step']:8.3f} ms")
    print(f"  INSERT + COMMIT      {p['floor_ms_per_step']:8.3f} ms")
    print(f"  ratio                {p['ratio']:8.2f} x   (goal: within 1.5x)")
    for t in report.get("throughput", []):
        print(
            f"throughput, {t['workers']} worker(s): {t['executions_per_second']:.1f} executions/s, "
            f"{t['steps_per_second']} steps/s ({t['executions']} executions in {t['seconds']} s; "
            f"CPU busy: workers {t['worker_cpu_per_second']}, machine "
            f"{t['machine_cpu_per_second']} of {report['cpus']})"
        )


if __name__ == "__main__":
    main()
