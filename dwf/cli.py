"""The ``dwf`` command.

Exit codes: 0 success (completed or halted), 1 the workflow failed or the store is broken,
2 a definition or usage error (bad YAML, bad input, unknown execution, wrong state).
Heavy modules are imported inside the commands so that ``dwf --help`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition
    from dwf.engine import Engine, Event, RunResult
    from dwf.extensions import Registry

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command-line mistake; printed as one line, exit code 2."""


def _err(message: str) -> None:
    print(f"dwf: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- shared helpers


def _registry(args: argparse.Namespace) -> Registry:
    from dwf.extensions import Registry, default_registry

    if getattr(args, "no_extensions", False):
        return default_registry()
    return Registry.with_installed_extensions()


def _workflow_files(paths: Sequence[str]) -> list[Path]:
    from dwf.dsl.catalog import workflow_files
    from dwf.errors import ConfigurationError

    try:
        return workflow_files(paths)
    except ConfigurationError as exc:
        raise UsageError(exc.message) from exc


def _catalog(
    registry: Registry, main: Path | None, extra: Sequence[str]
) -> dict[str, WorkflowDefinition]:
    """Workflows that ``workflow`` steps may start: the files beside the main one, plus
    ``--workflows`` paths."""
    from dwf.dsl.catalog import load_catalog
    from dwf.errors import ConfigurationError

    try:
        return load_catalog(registry, [main] if main is not None else [], extra)
    except ConfigurationError as exc:
        raise UsageError(exc.message) from exc


def _load(
    args: argparse.Namespace, file: str
) -> tuple[WorkflowDefinition, dict[str, WorkflowDefinition], Registry]:
    from dwf.dsl import load_workflow

    registry = _registry(args)
    path = Path(file)
    if not path.exists():
        raise UsageError(f"workflow file '{file}' does not exist")
    catalog = _catalog(registry, path, getattr(args, "workflows", []) or [])
    definition = load_workflow(path, registry=registry, catalog=catalog)
    for warning in definition.warnings:
        print(str(warning), file=sys.stderr)
    return definition, catalog, registry


def _services_files(args: argparse.Namespace) -> list[str]:
    files = list(getattr(args, "services", None) or [])
    env = os.environ.get("DWF_SERVICES")
    if env:
        files.extend(p for p in env.split(os.pathsep) if p)
    return files


def _engine(
    args: argparse.Namespace,
    *,
    registry: Registry | None = None,
    workflows: dict[str, WorkflowDefinition] | None = None,
    progress: bool = False,
) -> Engine:
    from dwf.engine import Engine
    from dwf.services import Services
    from dwf.storage import open_store

    services = Services.from_files(_services_files(args))
    handlers = [_progress_printer()] if progress else []
    return Engine(
        open_store(args.store),
        services=services,
        registry=registry or _registry(args),
        workflows=workflows or {},
        on_event=handlers,
    )


def _progress_printer() -> Any:
    def show(event: Event) -> None:
        if event.type == "step.started":
            print(f"  ▸ {event.step_path} ({event.step_type})", file=sys.stderr)
        elif event.type == "step.completed":
            print(f"  ✓ {event.step_path}", file=sys.stderr)
        elif event.type == "step.failed":
            print(
                f"  ✗ {event.step_path}: {event.data.get('error', {}).get('message')}",
                file=sys.stderr,
            )
        elif event.type == "step.halted":
            print(f"  ⏸ {event.step_path}", file=sys.stderr)

    return show


def _parse_json_arg(value: str | None, what: str) -> Any:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {what} file '{value[1:]}': {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def _print_result(result: RunResult, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, default=str))
    else:
        print(f"execution {result.execution_id}: {result.status}")
        if result.status == "completed":
            print(json.dumps(result.output, indent=2, ensure_ascii=False, default=str))
        elif result.status == "halted" and result.halt:
            print(
                f"halted at {result.halt.get('path')}: {result.halt.get('prompt') or ''}".rstrip()
            )
            data = result.halt.get("data")
            if data:
                print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
            print(
                f"resume with: dwf resume {result.execution_id} "
                "--approve | --reject | --response JSON"
            )
        elif result.error:
            where = result.error.get("step")
            print(f"error{f' in step {where!r}' if where else ''}: {result.error.get('message')}")
    return EXIT_FAILED if result.status == "failed" else EXIT_OK


async def _with_engine(engine: Engine, coro: Any) -> Any:
    try:
        return await coro
    finally:
        await engine.close()


def _run_async(engine: Engine, coro: Any) -> Any:
    import asyncio

    return asyncio.run(_with_engine(engine, coro))


# --------------------------------------------------------------------------- commands


def cmd_validate(args: argparse.Namespace) -> int:
    from dwf.dsl import load_workflow
    from dwf.errors import WorkflowLoadError

    registry = _registry(args)
    files = _workflow_files(args.paths)
    failed = 0
    for path in files:
        catalog = _catalog(registry, path, args.workflows or [])
        try:
            definition = load_workflow(path, registry=registry, catalog=catalog)
        except WorkflowLoadError as exc:
            failed += 1
            for diagnostic in exc.diagnostics:
                print(str(diagnostic), file=sys.stderr)
            if not exc.diagnostics:
                print(f"{path}: {exc}", file=sys.stderr)
            continue
        for warning in definition.warnings:
            print(str(warning), file=sys.stderr)
        print(f"{path}: ok (workflow '{definition.id}', {len(definition.steps)} steps)")
    if failed:
        print(f"{failed} of {len(files)} file(s) invalid", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from dwf.dsl.schema import language_schema

    print(json.dumps(language_schema(_registry(args)), indent=2))
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from dwf.dsl.graph import mermaid

    definition, _, registry = _load(args, args.file)
    print(mermaid(definition, registry))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    definition, catalog, registry = _load(args, args.file)
    payload = _parse_json_arg(args.input, "--input")
    if payload is None:  # not `or {}`: `[]`, `0` or `""` must be reported, not run as `{}`
        payload = {}
    if args.broker:
        return _enqueued(
            _engine(args, registry=registry, workflows=catalog),
            args,
            lambda runner: runner.enqueue_run(definition, payload, execution_id=args.execution_id),
        )
    progress = not args.json and sys.stderr.isatty() and not args.quiet
    engine = _engine(args, registry=registry, workflows=catalog, progress=progress)
    result = _run_async(engine, engine.run(definition, payload, execution_id=args.execution_id))
    return _print_result(result, args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    response = _parse_json_arg(args.response, "--response")
    approved = True if args.approve else False if args.reject else None
    if approved is None and response is None:
        raise UsageError("say how to resume: --approve, --reject or --response JSON")
    if args.broker:
        return _enqueued(
            _engine(args),
            args,
            lambda runner: runner.enqueue_resume(
                args.execution_id, approved=approved, response=response, by=args.by
            ),
        )
    progress = not args.json and sys.stderr.isatty() and not args.quiet
    engine = _engine(args, progress=progress)
    result = _run_async(
        engine, engine.resume(args.execution_id, approved=approved, response=response, by=args.by)
    )
    return _print_result(result, args.json)


def _enqueued(engine: Engine, args: argparse.Namespace, enqueue: Any) -> int:
    """Queue a job for ``dwf worker`` processes (``enqueue(runner)`` returns the execution id);
    print the id at once, or with ``--wait`` the outcome."""
    from dwf.runners.celery_app import CeleryAdapter
    from dwf.runners.queue import QueueRunner

    runner = QueueRunner(engine, CeleryAdapter(args.broker, queue=args.queue))

    async def go() -> tuple[str, RunResult | None]:
        try:
            execution_id: str = await enqueue(runner)
            if args.wait is None:
                return execution_id, None
            return execution_id, await runner.wait(execution_id, args.wait)
        finally:
            await runner.aclose()

    try:
        execution_id, result = _run_async(engine, go())
    except TimeoutError as exc:
        _err(str(exc))
        return EXIT_FAILED
    if result is not None:
        return _print_result(result, args.json)
    if args.json:
        print(json.dumps({"execution_id": execution_id, "status": "queued"}))
    else:
        print(f"execution {execution_id}: queued (dwf wait {execution_id})")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    engine = _engine(args)

    async def show() -> tuple[Any, Any]:
        record = await engine.get(args.execution_id)
        return record, await engine.store.entries(args.execution_id)

    record, entries = _run_async(engine, show())
    timeline = [
        {
            "seq": e.seq,
            "step": e.step_path,
            "type": e.step_type,
            "action": e.action,
            "attempt": e.attempt,
            "duration_ms": round(e.duration_ms, 3),
            **({"error": e.error} if e.error else {}),
        }
        for e in entries
    ]
    data = {
        "execution_id": record.id,
        "workflow_id": record.workflow_id,
        "status": str(record.status),
        "position": record.position,
        "input": record.input,
        "variables": record.variables,
        "output": record.output,
        "halt": record.halt,
        "error": record.error,
        "parent_id": record.parent_id,
        "owner": record.owner,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "timeline": timeline,
    }
    if args.json:
        print(json.dumps(data, ensure_ascii=False, default=str))
        return EXIT_OK
    print(f"execution {record.id}  workflow {record.workflow_id}  status {record.status}")
    if record.position:
        print(f"position: {'/'.join(record.position)}")
    if record.halt:
        print(f"halted: {record.halt.get('prompt') or ''}")
    if record.error:
        print(f"error: {record.error.get('message')}")
    print("variables:")
    print(json.dumps(record.variables, indent=2, ensure_ascii=False, default=str))
    print("timeline:")
    for row in timeline:
        extra = f"  {row['error']['message']}" if "error" in row else ""
        print(
            f"  {row['seq']:>4}  {row['action']:<10} {row['step']:<30} "
            f"{row['duration_ms']:>9.2f} ms{extra}"
        )
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from dwf.storage.base import Status

    status = None
    if args.status:
        try:
            status = Status(args.status)
        except ValueError:
            raise UsageError(
                f"unknown status '{args.status}'; use one of {', '.join(s.value for s in Status)}"
            ) from None
    engine = _engine(args)
    rows = _run_async(
        engine, engine.store.find(workflow_id=args.workflow, status=status, limit=args.limit)
    )
    if args.json:
        print(json.dumps([
            {"execution_id": r.id, "workflow_id": r.workflow_id, "status": str(r.status),
             "created_at": r.created_at, "updated_at": r.updated_at, "parent_id": r.parent_id}
            for r in rows
        ]))  # fmt: skip
        return EXIT_OK
    from datetime import datetime

    for r in rows:
        created = datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{r.id}  {r.workflow_id:<24} {r.status!s:<10} {created}")
    if not rows:
        print("no executions", file=sys.stderr)
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    engine = _engine(args, workflows=_catalog(_registry(args), None, args.workflows or []))
    if args.loop is not None:
        if args.execution_id:
            raise UsageError("--loop recovers every execution; leave out the execution id")
        if args.loop <= 0:
            raise UsageError("--loop takes a number of seconds > 0")
        pending_after = 0.0 if args.pending_after is None else args.pending_after
        _run_async(engine, _recover_loop(engine, args.loop, pending_after, args.json))
        return EXIT_OK
    if args.pending_after is not None:
        if args.execution_id:
            raise UsageError("--pending-after starts every old pending execution; leave out the id")
        results = _run_async(engine, engine.tick(pending_after=args.pending_after))
    else:
        results = _run_async(engine, engine.recover(args.execution_id))
    if args.json:
        print(json.dumps([r.to_dict() for r in results], ensure_ascii=False, default=str))
    else:
        for r in results:
            print(f"execution {r.execution_id}: {r.status}")
        if not results:
            print("nothing to recover")
    return EXIT_FAILED if any(r.status == "failed" for r in results) else EXIT_OK


async def _recover_loop(
    engine: Engine, interval: float, pending_after: float, as_json: bool
) -> None:
    """``dwf recover --loop``: the worker of a deployment without a broker (SQLite on one
    machine). Runs until interrupted; a store error is reported and the next round retries."""
    import asyncio
    import signal

    from dwf.errors import DwfError

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    if main is not None:  # SIGTERM (systemd, docker stop) ends the loop like Ctrl-C
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
    print(f"dwf recover: every {interval:g} s on {engine.store.url}", file=sys.stderr, flush=True)
    try:
        while True:
            try:
                results = await engine.tick(pending_after=pending_after)
            except DwfError as exc:
                _err(f"{exc.message} (trying again in {interval:g} s)")
                results = []
            for r in results:
                if as_json:
                    print(json.dumps(r.to_dict(), ensure_ascii=False, default=str), flush=True)
                else:
                    print(f"execution {r.execution_id}: {r.status}", flush=True)
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        pass


def cmd_wait(args: argparse.Namespace) -> int:
    from dwf.runners.queue import QueueRunner

    engine = _engine(args)
    runner = QueueRunner(engine)
    try:
        result = _run_async(engine, runner.wait(args.execution_id, args.timeout))
    except TimeoutError as exc:
        _err(str(exc))
        return EXIT_FAILED
    return _print_result(result, args.json)


def cmd_worker(args: argparse.Namespace) -> int:
    broker = args.broker or os.environ.get("DWF_BROKER")
    if not broker:
        raise UsageError("dwf worker needs a broker: --broker URL (or $DWF_BROKER)")
    if args.concurrency < 1:
        raise UsageError("--concurrency takes a whole number >= 1")
    store = args.store or os.environ.get("DWF_STORE")
    if not store:
        raise UsageError(
            "dwf worker needs the store the producers use: --store URL (or $DWF_STORE), e.g. "
            "postgresql://user@db/dwf"
        )
    from dwf.runners.celery_app import make_celery_app, run_worker

    app = make_celery_app(
        broker,
        store,
        _services_files(args),
        args.workflows or [],
        queue=args.queue,
        lease_seconds=args.lease_seconds,
        recover_interval=args.recover_interval,
        pending_after=args.pending_after,
        extensions=not args.no_extensions,
        visibility_timeout=args.visibility_timeout,
    )
    run_worker(
        app,
        queue=args.queue,
        pool=args.pool,
        concurrency=args.concurrency,
        loglevel=args.loglevel,
        name=args.name,
        extra_args=args.celery_args,
    )
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    engine = _engine(args)
    result = _run_async(engine, engine.cancel(args.execution_id))
    return _print_result(result, args.json)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dwf",
        description="dwf: durable workflows for AI agent orchestration.",
    )
    parser.add_argument("--version", action="version", version="dwf 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        # Every command takes both, even where one is unused, so one set of options (or a shell
        # alias) works with all commands.
        p.add_argument(
            "--store",
            metavar="URL",
            help="store URL (default: $DWF_STORE or a SQLite file in your data directory)",
        )
        p.add_argument(
            "--services",
            action="append",
            metavar="FILE",
            help="Python file whose classes and functions are services "
            "(repeatable; also $DWF_SERVICES)",
        )
        p.add_argument("--no-extensions", action="store_true", help="use the core step types only")

    def queued(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--broker",
            metavar="URL",
            help="queue it for `dwf worker` processes instead of running here; prints the "
            'execution id at once (pip install "dwf[celery]")',
        )
        p.add_argument("--queue", default="dwf", metavar="NAME", help="the workers' queue (dwf)")
        p.add_argument(
            "--wait",
            type=float,
            metavar="SECONDS",
            help="with --broker: wait (at most SECONDS) until it completes, fails or halts",
        )

    p = sub.add_parser("validate", help="check workflow files")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    p.add_argument(
        "--workflows",
        action="append",
        metavar="PATH",
        help="more workflows that sub-workflow steps may call",
    )
    common(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of the workflow language")
    common(p)
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("graph", help="print a Mermaid flowchart of a workflow")
    p.add_argument("file", metavar="FILE")
    common(p)
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("run", help="run a workflow")
    p.add_argument("file", metavar="WORKFLOW")
    p.add_argument("--input", metavar="JSON", help="input as JSON, or @file.json")
    p.add_argument("--execution-id", metavar="ID")
    p.add_argument("--workflows", action="append", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", "-q", action="store_true", help="no live progress")
    queued(p)
    common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", help="resume a halted execution")
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--approve", action="store_true")
    group.add_argument("--reject", action="store_true")
    p.add_argument("--response", metavar="JSON", help="the answer as JSON, or @file.json")
    p.add_argument("--by", metavar="NAME", help="who decides (recorded)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")
    queued(p)
    common(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("show", help="show an execution and its timeline")
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("list", help="list executions")
    p.add_argument("--workflow", metavar="ID")
    p.add_argument("--status", metavar="STATUS")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "recover", help="continue executions whose process died; fire expired timers"
    )
    p.add_argument("execution_id", nargs="?", metavar="EXECUTION_ID")
    p.add_argument("--workflows", action="append", metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--loop",
        type=float,
        metavar="SECONDS",
        help="keep going, a round every SECONDS, until stopped; also start pending executions "
        "(the worker of a deployment without a broker)",
    )
    p.add_argument(
        "--pending-after",
        type=float,
        metavar="SECONDS",
        help="start pending executions created at least SECONDS ago (default with --loop: 0)",
    )
    common(p)
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("wait", help="wait until an execution completes, fails or halts")
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after (exit 1)")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser(
        "worker",
        help='run a Celery worker for queued runs and resumes (pip install "dwf[celery]")',
        description="Run queued runs and resumes (dwf run/resume --broker, QueueRunner with "
        "CeleryAdapter), continue executions whose worker died, fire timers and deadlines. "
        "Arguments after -- go to `celery worker`.",
    )
    p.add_argument("--broker", metavar="URL", help="Celery broker URL (default: $DWF_BROKER)")
    p.add_argument("--queue", default="dwf", metavar="NAME", help="queue to consume (dwf)")
    p.add_argument("--concurrency", "-c", type=int, default=8, metavar="N",
                   help="tasks at once (default 8)")  # fmt: skip
    p.add_argument("--pool", choices=("threads", "prefork", "solo"), default="threads",
                   help="Celery pool (default threads: one engine per process)")  # fmt: skip
    p.add_argument("--lease-seconds", type=float, default=30.0, metavar="S",
                   help="lease of a running execution (default 30)")  # fmt: skip
    p.add_argument("--recover-interval", type=float, default=5.0, metavar="S",
                   help="seconds between recovery rounds; 0: none (default 5)")  # fmt: skip
    p.add_argument("--pending-after", type=float, metavar="S",
                   help="recovery also starts pending executions older than S seconds")  # fmt: skip
    p.add_argument("--visibility-timeout", type=float, default=300.0, metavar="S",
                   help="Redis: redeliver a dead worker's tasks after S (default 300)")  # fmt: skip
    p.add_argument("--workflows", action="append", metavar="PATH")
    p.add_argument("--name", metavar="NODE", help="Celery node name (default dwf-PID@host)")
    p.add_argument("--loglevel", "-l", default="INFO", metavar="LEVEL")
    p.add_argument("celery_args", nargs="*", metavar="-- CELERY_ARG",
                   help="extra `celery worker` arguments, after --")  # fmt: skip
    common(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("cancel", help="cancel an execution")
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_cancel)

    # Parsed by mcp_server's own parser (see main); listed here for `dwf --help`.
    sub.add_parser(
        "mcp",
        help="serve workflows as MCP tools (stdio for Claude Desktop, or HTTP)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["mcp"]:
        from mcp_server.cli import main as mcp_main  # imported only for this command

        served: int = mcp_main(arguments[1:])
        return served
    parser = build_parser()
    args = parser.parse_args(arguments)
    from dwf.errors import (
        DefinitionError,
        DwfError,
        ExecutionError,
        StateError,
        WorkflowLoadError,
    )

    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except WorkflowLoadError as exc:
        for diagnostic in exc.diagnostics or []:
            print(str(diagnostic), file=sys.stderr)
        if not exc.diagnostics:
            _err(str(exc))
        return EXIT_USAGE
    except (DefinitionError, StateError) as exc:
        _err(exc.message)
        return EXIT_USAGE
    except ExecutionError as exc:  # e.g. input validation before the run starts
        _err(exc.message)
        return EXIT_USAGE
    except DwfError as exc:
        _err(exc.message)
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("interrupted; running executions can be continued with `dwf recover`")
        return 130


if __name__ == "__main__":
    sys.exit(main())
