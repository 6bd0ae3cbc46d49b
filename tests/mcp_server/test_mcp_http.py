"""The server as a real uvicorn process on a loopback port, driven by the official Python client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import MODES, PROTOCOLS, SERVICES, WORKFLOWS, http_server

import dwf

pytestmark = pytest.mark.slow

TOKEN = "test-token-5c1e"


@contextlib.asynccontextmanager
async def http_client(url: str, mode: str = "auto", token: str = TOKEN) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx2.Timeout(30, read=120)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def server_args(tmp_path: Path, *extra: str) -> list[str]:
    store = f"sqlite:///{tmp_path / 'dwf.db'}"
    return ["--store", store, "--services", str(SERVICES), *extra, str(WORKFLOWS)]


@pytest.mark.parametrize("mode", MODES)
async def test_a_halting_workflow_is_run_resumed_and_completed_over_http(
    tmp_path: Path, mode: str
) -> None:
    seen: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    with http_server(server_args(tmp_path), token=TOKEN) as server:
        async with http_client(server.url, mode) as client:
            assert client.protocol_version == PROTOCOLS[mode]
            halted = await client.call_tool(
                "run_expense", {"amount": 900, "requester": "Eve"}, progress_callback=on_progress
            )
            execution_id = halted.structured_content["execution_id"]
            status = await client.call_tool("get_execution", {"execution_id": execution_id})
            done = await client.call_tool(
                "resume_execution", {"execution_id": execution_id, "approved": True}
            )
    assert halted.structured_content["status"] == "halted"
    assert halted.structured_content["halt"]["prompt"] == "Approve 900 EUR for Eve?"
    assert seen == ["expense: step route (router)", "expense: step ask_manager (approval)"]
    assert status.structured_content["status"] == "halted"
    assert done.structured_content["output"] == {"decision": "approved"}


async def test_requests_without_the_token_are_refused(tmp_path: Path) -> None:
    with http_server(server_args(tmp_path), token=TOKEN) as server:
        async with httpx2.AsyncClient() as http:
            refused = await http.post(
                server.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
            )
            health = await http.get(server.url.replace("/mcp", "/healthz"))
        stderr = server.stop()
    assert refused.status_code == 401
    assert health.status_code == 200
    assert "rejected a request without a valid bearer token" in stderr
    assert TOKEN not in stderr


async def test_events_stream_live_while_the_execution_runs(tmp_path: Path) -> None:
    with http_server(server_args(tmp_path, "--wait", "0.1"), token=TOKEN) as server:
        url = server.url
        async with http_client(url) as client:
            started = await client.call_tool("run_slow", {"seconds": 0.5})
        assert started.structured_content["status"] == "running"
        execution_id = started.structured_content["execution_id"]
        events_url = url.replace("/mcp", f"/executions/{execution_id}/events")
        types = []
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            http.stream("GET", events_url) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    types.append(json.loads(line[6:])["type"])
    assert types[0] == "workflow.started"
    assert types[-1] == "workflow.completed"


async def test_fifty_concurrent_clients_all_get_their_results(tmp_path: Path) -> None:
    """Two server processes share one SQLite file; 50 clients (both protocol eras) each run a
    workflow at once. No execution is lost and SQLite never reports a locked database."""
    args = server_args(tmp_path)
    with (
        http_server(args, token=TOKEN) as first,
        http_server(args, token=TOKEN) as second,
    ):

        async def one(n: int) -> dict[str, Any]:
            url = first.url if n % 2 else second.url
            async with http_client(url, MODES[(n // 2) % 2]) as client:
                result = await client.call_tool("run_greet", {"name": f"client-{n}"})
            assert not result.is_error, result
            content: dict[str, Any] = result.structured_content
            return content

        results = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(50))), 120)
        logs = [first.stop(), second.stop()]
    assert [r["status"] for r in results] == ["completed"] * 50
    assert [r["output"]["message"] for r in results] == [f"Hello, client-{n}!" for n in range(50)]
    ids = {r["execution_id"] for r in results}
    assert len(ids) == 50
    store = dwf.open_store(f"sqlite:///{tmp_path / 'dwf.db'}")
    try:
        stored = await store.find(workflow_id="greet", limit=100)
    finally:
        await store.close()
    assert {s.id for s in stored} == ids
    assert {str(s.status) for s in stored} == {"completed"}
    for log in logs:
        assert "database is locked" not in log
        assert "Traceback" not in log
