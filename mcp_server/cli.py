"""``dwf mcp`` and ``python -m mcp_server``: serve workflows to MCP clients.

Exit codes: 0 stopped normally, 1 the server could not start (port in use), 2 a usage or
definition error (bad option, missing file, invalid workflow, missing extra). All output goes to
stderr: in stdio mode stdout belongs to the protocol.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

    from mcp_server.server import WorkflowServer

__all__ = ["build_parser", "main"]

logger = logging.getLogger("dwf.mcp")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
TOKEN_ENV = "DWF_MCP_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dwf mcp",
        description="Serve dwf workflows as MCP tools: run_<workflow> for each workflow, plus "
        "get_execution, resume_execution, cancel_execution and list_executions.",
        epilog="Use absolute paths when a host starts the server (Claude Desktop ignores cwd).",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="WORKFLOW_OR_DIR", help="workflow files or directories"
    )
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (0: any free port)")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="store URL (default: $DWF_STORE or a SQLite file in your data directory)",
    )
    parser.add_argument(
        "--services",
        action="append",
        default=[],
        metavar="FILE",
        help="Python file whose classes and functions are services (repeatable; also "
        "$DWF_SERVICES)",
    )
    parser.add_argument(
        "--token",
        help=f"HTTP: require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV}; prefer the "
        "variable, command lines are visible to other users)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="HTTP: a browser origin to accept besides loopback ones (repeatable; "
        "'https://app.example.com' or 'https://app.example.com:*')",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="HTTP: a Host name to accept besides loopback ones (repeatable)",
    )
    parser.add_argument("--name", default="dwf", help="the server name clients show")
    parser.add_argument(
        "--wait",
        type=float,
        default=25.0,
        metavar="SECONDS",
        help="how long a tool call waits for a run before answering 'running' (default 25; "
        "Claude Desktop gives up after 60)",
    )
    parser.add_argument(
        "--no-tools", action="store_true", help="do not expose the tools workflows declare"
    )
    parser.add_argument(
        "--tool-prefix",
        default="run_",
        metavar="PREFIX",
        help="each workflow's tool is named PREFIX + workflow id (default 'run_')",
    )
    parser.add_argument(
        "--no-elicitation",
        action="store_true",
        help="never ask the user about approvals directly; always halt and resume",
    )
    parser.add_argument(
        "--no-recover",
        action="store_true",
        help="do not continue, on start, executions whose server process died",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="dwf.mcp log level (logs go to stderr)",
    )
    return parser


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record comes (so a redirect is honoured)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        root.addHandler(_StderrHandler())
        root.setLevel(logging.WARNING)
    logging.getLogger("dwf").setLevel(level.upper())


def _err(message: str) -> None:
    print(f"dwf mcp: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    missing = _missing_extra(http=args.transport == "http")
    if missing:
        _err(f'needs the mcp extra (missing {missing}): pip install "dwf[mcp]"')
        return EXIT_USAGE
    if args.wait < 0:
        _err("--wait must be >= 0 seconds")
        return EXIT_USAGE
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.token and args.transport == "stdio":
        logger.warning("--token applies to --transport http only; ignored")

    import dwf

    try:
        server = _build_server(args)
    except dwf.WorkflowLoadError as exc:
        for diagnostic in exc.diagnostics or []:
            print(str(diagnostic), file=sys.stderr)
        if not exc.diagnostics:
            _err(str(exc))
        return EXIT_USAGE
    except dwf.DwfError as exc:
        _err(exc.message)
        return EXIT_USAGE
    try:
        if args.transport == "stdio":
            import asyncio

            from mcp_server.stdio import serve_stdio

            asyncio.run(serve_stdio(server))
            return EXIT_OK
        return _serve_http(server, args, token)
    except KeyboardInterrupt:
        return 130


def _missing_extra(*, http: bool) -> str | None:
    import importlib.util

    modules = ["mcp", "starlette", *(["uvicorn"] if http else [])]
    return next((m for m in modules if importlib.util.find_spec(m) is None), None)


def _build_server(args: argparse.Namespace) -> WorkflowServer:
    import dwf
    from mcp_server.loading import load_services, load_workflows
    from mcp_server.server import WorkflowServer
    from mcp_server.stdio import quiet_stdout

    with quiet_stdout():  # a services file that prints must not corrupt the stdio stream
        loaded = load_workflows(args.paths)
        services = load_services(args.services)
    dwf.open_store(args.store)  # a bad URL is reported now, not at the first call
    return WorkflowServer(
        loaded,
        services=services,
        store=args.store,
        name=args.name,
        wait=args.wait,
        declared_tools=not args.no_tools,
        tool_prefix=args.tool_prefix,
        elicitation=not args.no_elicitation,
        recover=not args.no_recover,
    )


def _bind(host: str, port: int) -> socket.socket:
    import socket

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it small responses wait ~40 ms for delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_http(server: WorkflowServer, args: argparse.Namespace, token: str | None) -> int:
    import uvicorn

    from mcp_server.http import create_app

    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        _err(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return EXIT_FAILED
    app = create_app(
        server,
        host=args.host,
        token=token,
        allowed_origins=args.allowed_origin,
        allowed_hosts=args.allowed_host,
    )
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    logger.info(
        "serving %d workflow(s) at http://%s:%d/mcp%s",
        len(server.workflows),
        shown,
        bound_port,
        " (bearer token required)" if token else "",
    )
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return EXIT_OK
