"""The server as a real process over stdio, driven by the official Python client.

The server is started the way Claude Desktop starts it: from an unrelated directory, with
absolute paths. Its services print to stdout on import and on every call; the protocol stream
must stay clean all the same.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_support import MODES, PROTOCOLS, PYTHON, SERVICES, WORKFLOWS, server_env

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def stdio_server(
    tmp_path: Path, *extra: str, mode: str = "auto", store: str | None = None
) -> AsyncIterator[Client]:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    store = store or f"sqlite:///{tmp_path / 'dwf.db'}"
    params = StdioServerParameters(
        command=PYTHON,
        args=[
            "-m",
            "mcp_server",
            "--store",
            store,
            "--services",
            str(SERVICES),
            *extra,
            str(WORKFLOWS),
        ],
        cwd=str(elsewhere),
        env=server_env(),
    )
    with (tmp_path / "stderr.log").open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
            yield client


@pytest.mark.parametrize("mode", MODES)
async def test_a_workflow_runs_over_stdio_with_progress(tmp_path: Path, mode: str) -> None:
    seen: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    async with stdio_server(tmp_path, mode=mode) as client:
        assert client.protocol_version == PROTOCOLS[mode]
        tools = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("run_greet", {"name": "Ada"}, progress_callback=on_progress)
    assert "run_greet" in tools
    assert result.structured_content["output"] == {"message": "Hello, Ada!"}
    assert seen == [
        "greet: step start (start)",
        "greet: step compose (call)",
        "greet: step done (end)",
    ]
    stderr = (tmp_path / "stderr.log").read_text()
    assert "a stray print at import time" in stderr  # went to stderr, not into the stream
    assert "composing a greeting for Ada" in stderr


@pytest.mark.parametrize("mode", MODES)
async def test_a_halting_workflow_is_run_resumed_and_completed_over_stdio(
    tmp_path: Path, mode: str
) -> None:
    async with stdio_server(tmp_path, mode=mode) as client:
        halted = await client.call_tool("run_expense", {"amount": 250, "requester": "Bob"})
        execution_id = halted.structured_content["execution_id"]
        assert halted.structured_content["status"] == "halted"
        assert halted.structured_content["halt"]["prompt"] == "Approve 250 EUR for Bob?"
    # A new server process (as after a restart of the host) finishes the same execution.
    async with stdio_server(tmp_path, mode=mode) as client:
        listed = await client.call_tool("list_executions", {"status": "halted"})
        done = await client.call_tool(
            "resume_execution", {"execution_id": execution_id, "approved": True}
        )
    assert [r["execution_id"] for r in listed.structured_content["executions"]] == [execution_id]
    assert done.structured_content["status"] == "completed"
    assert done.structured_content["output"] == {"decision": "approved"}


def test_a_bad_path_is_reported_on_stderr_with_exit_code_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "-m", "mcp_server", str(tmp_path / "missing.yml")],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "missing.yml' does not exist" in result.stderr


def test_an_invalid_workflow_is_reported_with_its_location(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("id: broken\nname: Broken\nsteps:\n  - id: a\n    type: lop\n")
    result = subprocess.run(
        [PYTHON, "-m", "mcp_server", str(broken)],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{broken}:5:" in result.stderr
    assert "did you mean 'loop'?" in result.stderr


async def test_a_run_cut_off_by_a_stopped_server_is_continued_by_the_next_one(
    tmp_path: Path,
) -> None:
    async with stdio_server(tmp_path, "--wait", "0.2") as client:
        started = await client.call_tool("run_slow", {"seconds": 3})
    assert started.structured_content["status"] == "running"
    execution_id = started.structured_content["execution_id"]
    # The host closed the first server mid-step; the next one takes the execution up at start.
    async with stdio_server(tmp_path, "--wait", "30") as client:
        done = await client.call_tool(
            "get_execution", {"execution_id": execution_id, "wait_seconds": 30}
        )
    assert done.structured_content["status"] == "completed"
    assert done.structured_content["output"] == {"slept": 3}
    log = (tmp_path / "stderr.log").read_text()
    assert f"recovered execution {execution_id}: completed" in log
