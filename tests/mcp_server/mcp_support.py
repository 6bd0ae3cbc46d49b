"""Helpers shared by the MCP server tests (importable because conftest.py puts this folder on
``sys.path``): fixture paths, an in-process client, free ports, server processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client

from mcp_server import WorkflowServer

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
WORKFLOWS = FIXTURES / "workflows"
SERVICES = WORKFLOWS / "services.py"
NESTED = FIXTURES / "nested"
PYTHON = sys.executable

#: The SDK's two protocol eras: "auto" negotiates the 2026-07-28 per-request envelope with our
#: server, "legacy" the initialize handshake (2025-11-25).
MODES = ["auto", "legacy"]
PROTOCOLS = {"auto": "2026-07-28", "legacy": "2025-11-25"}


@contextlib.asynccontextmanager
async def connect(
    server: WorkflowServer, mode: str = "auto", **options: Any
) -> AsyncIterator[Client]:
    async with Client(server.mcp, mode=mode, **options) as client:
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(**extra: str) -> dict[str, str]:
    """The environment for a server process: this one without dwf settings that would leak in."""
    env = {k: v for k, v in os.environ.items() if k not in ("DWF_STORE", "DWF_SERVICES")}
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """A server started by :func:`http_server`: its ``/mcp`` URL and its stderr, once stopped."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> str:
        """Stop the server (if running) and return what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.log_path.read_text()


@contextlib.contextmanager
def http_server(
    args: list[str], *, token: str | None = None, cwd: Path | None = None, timeout: float = 30.0
) -> Iterator[ServerProcess]:
    """Start ``python -m mcp_server --transport http`` on a free loopback port and wait until
    ``/healthz`` answers; stop it afterwards. Its stderr goes to a file (never a full pipe)."""
    port = free_port()
    env = server_env(**({"DWF_MCP_TOKEN": token} if token else {}))
    command = [PYTHON, "-m", "mcp_server", "--transport", "http", "--port", str(port), *args]
    with tempfile.TemporaryDirectory(prefix="dwf-mcp-log-") as logs:
        log_path = Path(logs) / "stderr.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        server = ServerProcess(f"http://127.0.0.1:{port}/mcp", proc, log_path)
        try:
            _wait_healthy(server, timeout)
            yield server
        finally:
            server.stop()


def _wait_healthy(server: ServerProcess, timeout: float) -> None:
    health = server.url.replace("/mcp", "/healthz")
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}: {server.stop()}")
        try:
            if httpx2.get(health, timeout=1.0).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not answer {health} in time: {server.stop()}")
        time.sleep(0.05)
