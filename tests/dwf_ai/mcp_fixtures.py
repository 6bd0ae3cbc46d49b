"""Fixtures for the MCP client tests: real servers in real processes.

* ``everything_js``: the official reference server ``@modelcontextprotocol/server-everything``,
  installed with npm into ``tests/dwf_ai/.npm/`` (git-ignored) on first use. Tests that need it
  are skipped, with a message that says so, only when ``node`` or ``npm`` is missing.
* ``everything_http``: that server in Streamable HTTP mode on a free loopback port.
* ``test_server``: a tiny Python MCP server (plain JSON-RPC, so it starts in milliseconds) with
  tools that count calls, crash mid-call, fail on purpose, answer slowly and echo ``_meta``.

Test modules import the fixtures they use from here (``conftest.py`` belongs to the package's
shared test setup).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pytest
import pytest_asyncio

from dwf_ai.mcp import MCPClientPool

HERE = Path(__file__).resolve().parent
NPM_DIR = HERE / ".npm"
EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything"
#: Pinned, so a new release cannot change what the tests see.
EVERYTHING_VERSION = "2026.8.31"
EVERYTHING_JS = NPM_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist"
EVERYTHING_JS = EVERYTHING_JS / "index.js"
NPM_INSTALL_TIMEOUT = 300.0
SERVER_START_TIMEOUT = 30.0

TEST_SERVER_SOURCE = r"""
# A minimal MCP server over stdio for dwf's client tests, written with no SDK so that it starts
# in milliseconds (written out by tests/dwf_ai/mcp_fixtures.py). Speaks the 2025-11-25
# handshake; answers the 2026 'server/discover' probe with "method not found", as older servers do.
import json, os, sys, threading, time

lock = threading.Lock()
TOOLS = [
    {"name": "pid", "description": "The server's process id.",
     "inputSchema": {"type": "object", "properties": {}}},
    {"name": "count", "description": "Record one call in $DWF_TEST_COUNTER.",
     "inputSchema": {"type": "object", "properties": {"label": {"type": "string"}},
                     "required": ["label"]}},
    {"name": "crash", "description": "Exit in the middle of the call.",
     "inputSchema": {"type": "object", "properties": {}}},
    {"name": "fail", "description": "Report an error (isError).",
     "inputSchema": {"type": "object", "properties": {"reason": {"type": "string"}}}},
    {"name": "meta", "description": "The request's _meta.",
     "inputSchema": {"type": "object", "properties": {}}},
    {"name": "slow", "description": "Answer after some seconds.",
     "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}}},
    {"name": "refuse", "description": "Answer with a JSON-RPC error.",
     "inputSchema": {"type": "object", "properties": {}}},
]


def send(message):
    with lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def text(value, error=False):
    return {"content": [{"type": "text", "text": value}], "isError": error}


def call(request_id, params):
    name, args = params.get("name"), params.get("arguments") or {}
    if name == "pid":
        result = {**text(str(os.getpid())), "structuredContent": {"pid": os.getpid()}}
    elif name == "count":
        with open(os.environ["DWF_TEST_COUNTER"], "a") as f:
            f.write(args["label"] + "\n")
        result = text(args["label"])
    elif name == "crash":
        os._exit(1)
    elif name == "fail":
        result = text(args.get("reason", "failed"), error=True)
    elif name == "meta":
        result = {**text("meta"), "structuredContent": {"meta": params.get("_meta") or {}}}
    elif name == "slow":
        time.sleep(float(args.get("seconds", 1)))
        result = text("done")
    elif name == "refuse":
        send({"jsonrpc": "2.0", "id": request_id,
              "error": {"code": -32603, "message": "the backend is down"}})
        return
    else:
        result = text(f"unknown tool {name}", error=True)
    send({"jsonrpc": "2.0", "id": request_id, "result": result})


for line in sys.stdin:
    message = json.loads(line)
    method, request_id = message.get("method"), message.get("id")
    if request_id is None:
        continue  # notifications
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": request_id, "result": {
            "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
            "serverInfo": {"name": "dwf-test", "version": "1.0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        threading.Thread(target=call, args=(request_id, message["params"]), daemon=True).start()
    else:
        send({"jsonrpc": "2.0", "id": request_id,
              "error": {"code": -32601, "message": f"Method not found: {method}"}})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _install_everything() -> Path:
    """Install the reference server once (npm's own cache makes later installs fast)."""
    if EVERYTHING_JS.is_file():
        return EVERYTHING_JS
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            f"node and npm are needed to run the MCP reference server {EVERYTHING_PACKAGE} "
            "(install Node.js 18+ to run these tests)"
        )
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    # Keep the cache out of git without touching the repository's .gitignore.
    (NPM_DIR / ".gitignore").write_text("*\n")
    command = [
        npm,
        "install",
        "--prefix",
        str(NPM_DIR),
        "--no-audit",
        "--no-fund",
        "--no-save",
        f"{EVERYTHING_PACKAGE}@{EVERYTHING_VERSION}",
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=NPM_INSTALL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"'{' '.join(command)}' did not finish within {NPM_INSTALL_TIMEOUT:g}s")
    if done.returncode != 0 or not EVERYTHING_JS.is_file():
        pytest.fail(
            f"could not install {EVERYTHING_PACKAGE} with '{' '.join(command)}' "
            f"(exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return EVERYTHING_JS


@pytest.fixture(scope="session")
def everything_js() -> Path:
    """The reference server's entry point (``node <path> stdio|streamableHttp``)."""
    return _install_everything()


@pytest.fixture(scope="session")
def everything_server(everything_js: Path) -> dict[str, Any]:
    """``mcp_servers`` settings for the reference server over stdio (original list spelling)."""
    return {"transport": "stdio", "command": ["node", str(everything_js), "stdio"]}


@dataclass
class HTTPServer:
    """A server process listening on ``url``; its output goes to ``log_path``."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Callable[[], str]) -> None:
    """Wait (bounded) until something accepts connections on ``port``."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not listen on port {port} in time:\n{log()}")
        time.sleep(0.02)


@contextlib.contextmanager
def start_everything_http(
    everything_js: Path, log_dir: Path, port: int | None = None
) -> Iterator[HTTPServer]:
    """The reference server in Streamable HTTP mode (``PORT`` selects its port)."""
    port = port or free_port()
    log_path = log_dir / f"everything-http-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["node", str(everything_js), "streamableHttp"],
            env={**os.environ, "PORT": str(port)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    server = HTTPServer(f"http://127.0.0.1:{port}/mcp", port, proc, log_path)
    try:
        wait_for_port(port, proc, server.log)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def everything_http(
    everything_js: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HTTPServer]:
    """One reference server over Streamable HTTP, shared by the tests that only call it."""
    with start_everything_http(everything_js, tmp_path_factory.mktemp("http")) as server:
        yield server


@pytest.fixture(scope="session")
def test_server_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp-server") / "dwf_test_server.py"
    path.write_text(TEST_SERVER_SOURCE)
    return path


@pytest.fixture
def counter_file(tmp_path: Path) -> Path:
    """The file the test server's ``count`` tool appends to (one line per call)."""
    return tmp_path / "calls.txt"


@pytest.fixture
def test_server(test_server_script: Path, counter_file: Path) -> dict[str, Any]:
    """``mcp_servers`` settings for the Python test server over stdio."""
    return {
        "command": sys.executable,
        "args": [str(test_server_script)],
        "env": {"DWF_TEST_COUNTER": str(counter_file)},
    }


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[TextIO]:
    """Where stdio servers' stderr goes (kept out of the test output)."""
    with (tmp_path / "server-stderr.log").open("w") as f:
        yield f


@pytest_asyncio.fixture
async def make_pool(errlog: TextIO) -> AsyncIterator[Callable[..., MCPClientPool]]:
    """Build pools that are closed after the test, in the test's event loop."""
    pools: list[MCPClientPool] = []

    def make(servers: dict[str, Any] | None = None, **options: Any) -> MCPClientPool:
        options.setdefault("errlog", errlog)
        pool = MCPClientPool(servers, **options)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.aclose()


async def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll ``condition`` (state no event reports) until it holds; fail after ``limit`` s."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 (nothing to wait on but the condition)
            await asyncio.sleep(0.01)


def process_alive(pid: int) -> bool:
    """Whether a process (not a zombie) with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        with contextlib.suppress(OSError, IndexError):
            return stat.read_text().split()[2] != "Z"
    return True
