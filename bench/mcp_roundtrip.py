"""Round trip of an MCP ``tools/call``: a three-step dwf workflow against a bare echo tool.

Both servers use the same SDK (``mcp``), the same transport and the same client, and run in
the same invocation, their calls interleaved so that machine noise hits both alike. The goal
(docs/mcp.md) is a workflow call within 2x of the echo call over stdio.

    python bench/mcp_roundtrip.py                         # stdio; memory and SQLite stores
    python bench/mcp_roundtrip.py --transport http --calls 500
    python bench/mcp_roundtrip.py --json                  # one JSON object, for scripts

The workflow is ``assign`` -> ``call`` (an async echo service) -> ``end``. With the SQLite store
every step is a durable checkpoint (``synchronous=full``: one fsync per step; ``sqlite-normal``
keeps WAL's commit-without-fsync, which survives a crash of the process but not of the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

WORKFLOW = """\
id: echo3
name: Echo in three steps
inputs:
  message: {type: string}
steps:
  - id: prepare
    type: assign
    set: {text: $input.message}
    next: echo
  - id: echo
    type: call
    service: Echo
    method: echo
    input: {text: $text}
    output: echoed
    next: done
  - id: done
    type: end
    result: {echoed: $echoed}
"""

SERVICES = """\
class Echo:
    async def echo(self, text: str) -> str:
        return text
"""


# ------------------------------------------------------------------------------ echo server


def _echo_server() -> Any:
    import mcp_types as types
    from mcp.server import Server

    tool = types.Tool(
        name="echo",
        description="Echo the message",
        input_schema={
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
    )

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        text = str((params.arguments or {}).get("message", ""))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server("echo", on_list_tools=list_tools, on_call_tool=call_tool)


def serve_echo(transport: str, port: int) -> None:
    server = _echo_server()
    if transport == "stdio":
        from mcp.server.stdio import stdio_server

        async def main() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        asyncio.run(main())
        return
    import uvicorn

    app = server.streamable_http_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# ------------------------------------------------------------------------------ measuring


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _http_process(args: list[str], port: int) -> AsyncIterator[str]:
    import httpx2

    proc = await asyncio.create_subprocess_exec(
        *args, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with httpx2.AsyncClient() as http:
            for _ in range(200):
                with contextlib.suppress(httpx2.HTTPError):
                    await http.get(f"http://127.0.0.1:{port}/healthz")
                    break
                with contextlib.suppress(httpx2.HTTPError):
                    response = await http.get(f"http://127.0.0.1:{port}/mcp")
                    if response.status_code < 500:
                        break
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


@contextlib.asynccontextmanager
async def _connect(kind: str, transport: str, work: Path, store: str, mode: str) -> Any:
    from mcp import Client, StdioServerParameters

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if kind == "echo":
        args = [sys.executable, __file__, "--serve-echo", "--transport", transport]
    else:
        args = [sys.executable, "-m", "mcp_server", "--store", store, "--log-level", "error"]
        args += ["--services", str(work / "services.py"), str(work / "echo3.yml")]
        args += ["--transport", transport]
    if transport == "stdio":
        params = StdioServerParameters(command=args[0], args=args[1:], env=env)
        with open(os.devnull, "w") as devnull:
            async with Client(_stdio(params, devnull), mode=mode) as client:
                yield client
        return
    port = _free_port()
    async with (
        _http_process([*args, "--port", str(port)], port) as url,
        Client(url, mode=mode) as client,
    ):
        yield client


def _stdio(params: Any, errlog: Any) -> Any:
    from mcp.client.stdio import stdio_client

    return stdio_client(params, errlog=errlog)


async def _timed(call: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    result = await call()
    elapsed = time.perf_counter() - start
    if getattr(result, "is_error", False):
        raise RuntimeError(f"tool call failed: {result}")
    return elapsed


async def measure(transport: str, store: str, calls: int, warmup: int, mode: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dwf-bench-") as tmp:
        work = Path(tmp)
        (work / "echo3.yml").write_text(WORKFLOW)
        (work / "services.py").write_text(SERVICES)
        store_url = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{work / 'bench.db'}",
            "sqlite-normal": f"sqlite:///{work / 'bench.db'}?synchronous=normal",
        }[store]
        async with (
            _connect("echo", transport, work, store_url, mode) as echo,
            _connect("dwf", transport, work, store_url, mode) as dwf,
        ):
            await echo.list_tools()
            await dwf.list_tools()

            def echo_call() -> Any:
                return echo.call_tool("echo", {"message": "hi"})

            def dwf_call() -> Any:
                return dwf.call_tool("run_echo3", {"message": "hi"})

            for _ in range(warmup):
                await _timed(echo_call)
                await _timed(dwf_call)
            echo_times: list[float] = []
            dwf_times: list[float] = []
            for _ in range(calls):  # interleaved: noise hits both alike
                echo_times.append(await _timed(echo_call))
                dwf_times.append(await _timed(dwf_call))
            protocol = dwf.protocol_version
    return {
        "transport": transport,
        "store": store,
        "protocol": protocol,
        "calls": calls,
        "echo_ms": _summary(echo_times),
        "workflow_ms": _summary(dwf_times),
        "ratio_median": statistics.median(dwf_times) / statistics.median(echo_times),
    }


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median": round(statistics.median(ordered) * 1000, 3),
        "p90": round(ordered[int(len(ordered) * 0.9) - 1] * 1000, 3),
        "mean": round(statistics.fmean(ordered) * 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument(
        "--stores",
        default="memory,sqlite,sqlite-normal",
        help="comma-separated: memory, sqlite (synchronous=full), sqlite-normal",
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--mode", default="auto", help="client protocol mode: auto (2026-07-28) or legacy"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        serve_echo(args.transport, args.port)
        return 0
    results = [
        asyncio.run(measure(args.transport, store, args.calls, args.warmup, args.mode))
        for store in args.stores.split(",")
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"tools/call round trip over {args.transport}, {args.calls} calls each (ms)")
    print(f"{'store':<14} {'protocol':<11} {'echo p50':>9} {'dwf p50':>9} {'echo p90':>9} "
          f"{'dwf p90':>9} {'ratio':>6}")  # fmt: skip
    for r in results:
        e, w = r["echo_ms"], r["workflow_ms"]
        print(
            f"{r['store']:<14} {r['protocol']:<11} {e['median']:>9.3f} {w['median']:>9.3f} "
            f"{e['p90']:>9.3f} {w['p90']:>9.3f} {r['ratio_median']:>5.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
