"""The Starlette app in-process: request checks, health, the events stream, mounting."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from conftest import MakeServer
from mcp_support import NESTED, SERVICES, WORKFLOWS
from starlette.applications import Starlette
from starlette.routing import Mount

import dwf
from mcp_server import WorkflowServer, create_app, load_services, load_workflows
from mcp_server._http_checks import default_policy

TOKEN = "s3cret-token"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@contextlib.asynccontextmanager
async def serving(
    app: Starlette, base: str = "http://127.0.0.1:8000"
) -> AsyncIterator[httpx2.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=base) as http,
    ):
        yield http


def sse_events(body: str) -> list[dict[str, Any]]:
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append({"id": fields.get("id"), **json.loads(fields["data"])})
    return events


async def test_healthz_answers_without_a_token_and_for_any_host(make_server: MakeServer) -> None:
    app = create_app(make_server(), token=TOKEN)
    async with serving(app, base="http://load-balancer.internal") as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_a_token_is_required_on_the_mcp_endpoint(make_server: MakeServer) -> None:
    app = create_app(make_server(), token=TOKEN)
    async with serving(app) as http:
        missing = await http.post("/mcp", json=INIT, headers=MCP_HEADERS)
        wrong = await http.post(
            "/mcp", json=INIT, headers={**MCP_HEADERS, "authorization": "Bearer nope"}
        )
        right = await http.post(
            "/mcp", json=INIT, headers={**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
        )
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="dwf"'
    assert wrong.status_code == 401
    assert TOKEN not in missing.text
    assert right.status_code == 200
    assert right.headers["mcp-session-id"]


async def test_foreign_hosts_and_origins_are_refused(make_server: MakeServer) -> None:
    app = create_app(make_server(), allowed_origins=["https://app.example.com"])
    async with serving(app) as http:
        evil_host = await http.post(
            "/mcp", json=INIT, headers={**MCP_HEADERS, "host": "evil.example"}
        )
        evil_origin = await http.post(
            "/mcp", json=INIT, headers={**MCP_HEADERS, "origin": "http://evil.example"}
        )
        local_origin = await http.post(
            "/mcp", json=INIT, headers={**MCP_HEADERS, "origin": "http://localhost:6274"}
        )
        allowed = await http.post(
            "/mcp", json=INIT, headers={**MCP_HEADERS, "origin": "https://app.example.com"}
        )
        events = await http.get("/executions/x/events", headers={"host": "evil.example"})
    assert evil_host.status_code == 421
    assert evil_origin.status_code == 403
    assert local_origin.status_code == 200
    assert allowed.status_code == 200
    assert events.status_code == 421


async def test_large_request_bodies_are_refused(make_server: MakeServer) -> None:
    app = create_app(make_server(), max_request_bytes=1000)
    big = {**INIT, "params": {**INIT["params"], "padding": "x" * 2000}}  # type: ignore[dict-item]
    async with serving(app) as http:
        response = await http.post("/mcp", json=big, headers=MCP_HEADERS)
    assert response.status_code == 413


def test_the_host_policy_follows_the_bound_address() -> None:
    loopback = default_policy("127.0.0.1")
    assert loopback.host_ok("localhost:8000")
    assert loopback.host_ok("[::1]:8000")
    assert not loopback.host_ok("evil.example:8000")
    assert not loopback.host_ok(None)
    named = default_policy("10.1.2.3", allowed_hosts=["dwf.internal"])
    assert named.host_ok("10.1.2.3:8000")
    assert named.host_ok("dwf.internal")
    assert not named.host_ok("evil.example")
    assert default_policy("0.0.0.0").host_ok("anything.example")
    assert not default_policy("0.0.0.0", allowed_hosts=["a.example"]).host_ok("b.example")
    origins = default_policy("127.0.0.1", allowed_origins=["https://ui.example:*"])
    assert origins.origin_ok("https://ui.example:8443")
    assert not origins.origin_ok("https://ui.example:8443.evil.example")
    assert not origins.origin_ok("null")


async def _run(server: WorkflowServer, workflow_id: str, arguments: dict[str, Any]) -> str:
    executions = server.executions
    execution_id = executions.start(executions.workflow(workflow_id), arguments)
    await executions.follow(execution_id, 10)
    return execution_id


async def test_the_events_of_an_execution_stream_as_server_sent_events(
    make_server: MakeServer,
) -> None:
    server = make_server()
    app = create_app(server)
    async with serving(app) as http:
        execution_id = await _run(server, "greet", {"name": "Ada"})
        response = await http.get(f"/executions/{execution_id}/events")
        replay = await http.get(
            f"/executions/{execution_id}/events", headers={"last-event-id": "6"}
        )
        missing = await http.get("/executions/nope/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert [e["type"] for e in events] == [
        "workflow.started",
        "step.started", "step.completed",
        "step.started", "step.completed",
        "step.started", "step.completed",
        "workflow.completed",
    ]  # fmt: skip
    assert [e["id"] for e in events] == [str(n) for n in range(1, 9)]
    assert events[-1]["data"]["output"] == {"message": "Hello, Ada!"}
    assert [e["id"] for e in sse_events(replay.text)] == ["7", "8"]
    assert missing.status_code == 404


async def test_an_execution_this_server_did_not_watch_streams_its_stored_state(
    make_server: MakeServer,
) -> None:
    store = dwf.open_store("memory://")
    services = load_services([SERVICES], env=False)
    other = dwf.Engine(store, services=services)
    loaded = load_workflows([WORKFLOWS])
    done = await other.run(next(w for w in loaded.workflows if w.id == "greet"), {"name": "Bo"})
    server = WorkflowServer(loaded, engine=dwf.Engine(store, services=services))
    async with serving(create_app(server)) as http:
        response = await http.get(f"/executions/{done.execution_id}/events")
    (event,) = sse_events(response.text)
    assert event["type"] == "workflow.completed"
    assert event["data"] == {"output": {"message": "Hello, Bo!"}}


async def test_the_app_mounts_inside_another_starlette_app(make_server: MakeServer) -> None:
    server = make_server([NESTED / "parent.yml"])
    mcp_app = create_app(server, token=TOKEN)
    parent = Starlette(
        routes=[Mount("/dwf", app=mcp_app)], lifespan=mcp_app.router.lifespan_context
    )
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with serving(parent) as http:
        health = await http.get("/dwf/healthz")
        refused = await http.post("/dwf/mcp", json=INIT, headers=MCP_HEADERS)
        accepted = await http.post("/dwf/mcp", json=INIT, headers={**MCP_HEADERS, **auth})
        execution_id = await _run(server, "parent", {"city": "Oslo"})
        events = await http.get(f"/dwf/executions/{execution_id}/events", headers=auth)
    assert health.status_code == 200
    assert refused.status_code == 401
    assert accepted.status_code == 200
    types = [e["type"] for e in sse_events(events.text)]
    assert types[0] == "workflow.started"
    assert types[-1] == "workflow.completed"
    assert types.count("workflow.started") == 2  # the child's events are part of the stream


async def test_events_are_unavailable_before_the_app_starts(make_server: MakeServer) -> None:
    app = create_app(make_server())
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        response = await http.get("/executions/x/events")
    assert response.status_code == 503


@pytest.mark.parametrize("path", ["/healthz", "/executions/x/events"])
async def test_routes_answer_only_get(make_server: MakeServer, path: str) -> None:
    async with serving(create_app(make_server())) as http:
        response = await http.post(path)
    assert response.status_code == 405
