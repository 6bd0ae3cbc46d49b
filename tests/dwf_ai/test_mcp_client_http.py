"""The client over Streamable HTTP: the official reference server in HTTP mode, and dwf's own
MCP server (which checks a bearer token) when it is available."""

# Fixtures imported from mcp_fixtures are test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from mcp_fixtures import (  # noqa: F401 (fixtures are found by name)
    HTTPServer,
    errlog,
    everything_http,
    everything_js,
    free_port,
    make_pool,
    start_everything_http,
    wait_for_port,
    wait_until,
)

import dwf
from dwf.extensions import TopLevelKey
from dwf_ai.mcp import (
    MCPClientPool,
    MCPConfigError,
    MCPConnectionError,
    MCPServersSection,
    MCPStep,
    MCPToolNotFound,
)

pytestmark = pytest.mark.slow

MakePool = Callable[..., MCPClientPool]
shared_loop = pytest.mark.asyncio(loop_scope="module")
TOKEN = "dwf-test-token-5f2c9a"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http_pool(everything_http: HTTPServer) -> AsyncIterator[MCPClientPool]:
    """One pool with the shared HTTP reference server as 'everything'."""
    pool = MCPClientPool({"everything": {"url": everything_http.url, "timeout": 20}})
    yield pool
    await pool.aclose()


# -------------------------------------------------------------------- the reference server


@shared_loop
async def test_tools_are_listed_over_http(http_pool: MCPClientPool) -> None:
    names = {tool.name for tool in await http_pool.list_tools("everything")}
    assert {"echo", "get-sum", "get-structured-content"} <= names


@shared_loop
async def test_a_call_over_http_returns_structured_content(http_pool: MCPClientPool) -> None:
    result = await http_pool.call_tool(
        "everything", "get-structured-content", {"location": "New York"}
    )
    assert result.value == {"temperature": 33, "conditions": "Cloudy", "humidity": 82}


@shared_loop
async def test_concurrent_calls_over_http_share_the_connection(http_pool: MCPClientPool) -> None:
    results = await asyncio.gather(
        *(http_pool.call_tool("everything", "echo", {"message": str(i)}) for i in range(5))
    )
    assert [r.text for r in results] == [f"Echo: {i}" for i in range(5)]
    assert len(http_pool._connections) == 1


@shared_loop
async def test_an_unknown_tool_over_http_is_named(http_pool: MCPClientPool) -> None:
    with pytest.raises(MCPToolNotFound, match="did you mean 'get-sum'"):
        await http_pool.call_tool("everything", "get_sum", {})


async def test_a_url_that_refuses_connections_is_a_clear_error(make_pool: MakePool) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    pool = make_pool({"down": {"url": url}})
    started = time.monotonic()
    with pytest.raises(MCPConnectionError) as info:
        await pool.list_tools("down")
    assert str(info.value) == (
        f"cannot reach MCP server 'down' ({url}): All connection attempts failed. "
        "Check the URL and that the server is running"
    )
    assert time.monotonic() - started < 5


async def test_an_unset_header_variable_fails_before_connecting(make_pool: MakePool) -> None:
    pool = make_pool(
        {"gh": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer ${NO_TOK}"}}},
        environ={},
    )
    with pytest.raises(MCPConfigError) as info:
        await pool.call_tool("gh", "search", {})
    assert "'headers.Authorization' uses ${NO_TOK}" in str(info.value)
    assert pool._connections == {}


async def test_a_server_that_went_away_is_reconnected_once_it_is_back(
    make_pool: MakePool, everything_js: Path, tmp_path: Path
) -> None:
    port = free_port()
    pool = make_pool({"e": {"url": f"http://127.0.0.1:{port}/mcp", "timeout": 20}})
    with start_everything_http(everything_js, tmp_path, port):
        assert (await pool.call_tool("e", "echo", {"message": "1"})).text == "Echo: 1"
    # The server is gone: the call cannot reach it, and says so.
    with pytest.raises(MCPConnectionError, match="cannot reach MCP server 'e'"):
        await pool.call_tool("e", "echo", {"message": "2"})
    with start_everything_http(everything_js, tmp_path, port):
        assert (await pool.call_tool("e", "echo", {"message": "3"})).text == "Echo: 3"


async def test_a_server_killed_mid_call_fails_the_call_without_hanging(
    make_pool: MakePool, everything_js: Path, tmp_path: Path
) -> None:
    with start_everything_http(everything_js, tmp_path) as server:
        pool = make_pool({"e": {"url": server.url, "timeout": 20}})
        await pool.list_tools("e")
        posts = server.log().count("Received MCP POST request")
        call = asyncio.ensure_future(
            pool.call_tool("e", "trigger-long-running-operation", {"duration": 30, "steps": 1})
        )
        await wait_until(lambda: server.log().count("Received MCP POST request") > posts)
        server.proc.kill()
        started = time.monotonic()
        with pytest.raises(MCPConnectionError) as info:
            await asyncio.wait_for(call, 15)
        assert "closed during tools/call 'trigger-long-running-operation'" in str(info.value)
        assert time.monotonic() - started < 10


# -------------------------------------------------------------------- dwf's own MCP server

WORKFLOW = {
    "id": "hello",
    "name": "Hello",
    "inputs": {"who": {"type": "string", "required": True}},
    "steps": [
        {"id": "start", "type": "start", "next": "done"},
        {"id": "done", "type": "end", "result": {"hello": "$input.who"}},
    ],
}


@contextlib.contextmanager
def dwf_mcp_server(tmp_path: Path) -> Iterator[str]:
    """``python -m mcp_server`` over HTTP with a bearer token; yields its URL."""
    try:
        import mcp_server  # noqa: F401
    except ImportError as exc:  # being built alongside; its own tests cover it
        pytest.skip(f"dwf's MCP server package is not importable: {exc}")
    workflow = tmp_path / "hello.yml"
    workflow.write_text(yaml.safe_dump(WORKFLOW, sort_keys=False))
    port = free_port()
    log_path = tmp_path / "dwf-mcp.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DWF_STORE", "DWF_SERVICES")}
    env["DWF_MCP_TOKEN"] = TOKEN
    command = [sys.executable, "-m", "mcp_server", "--transport", "http", "--port", str(port)]
    command += ["--store", "memory://", str(workflow)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    server = HTTPServer(f"http://127.0.0.1:{port}/mcp", port, proc, log_path)
    try:
        wait_for_port(port, proc, server.log)
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dwf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dwf_mcp_server(tmp_path_factory.mktemp("dwf-mcp")) as url:
        yield url


def read_files(folder: Path, pattern: str) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob(pattern)))


async def test_header_variables_authenticate_against_dwfs_own_server(
    make_pool: MakePool, dwf_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = {"url": dwf_server, "headers": {"Authorization": "Bearer ${DWF_TEST_TOKEN}"}}
    pool = make_pool({"dwf": server}, environ={"DWF_TEST_TOKEN": TOKEN})
    names = {tool.name for tool in await pool.list_tools("dwf")}
    assert "run_hello" in names
    result = await pool.call_tool("dwf", "run_hello", {"who": "Ann"})
    assert result.value["status"] == "completed"
    assert result.value["output"] == {"hello": "Ann"}
    assert TOKEN not in caplog.text


async def test_a_wrong_token_is_reported_as_an_http_401(
    make_pool: MakePool, dwf_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = {"url": dwf_server, "headers": {"Authorization": "Bearer ${DWF_TEST_TOKEN}"}}
    pool = make_pool({"dwf": server}, environ={"DWF_TEST_TOKEN": "not-the-token"})
    with pytest.raises(MCPConnectionError) as info:
        await pool.list_tools("dwf")
    message = str(info.value)
    assert "refused the connection (HTTP 401 Unauthorized)" in message
    assert "check its 'headers'" in message
    assert "not-the-token" not in message
    assert "not-the-token" not in caplog.text


async def test_secrets_from_the_environment_are_never_stored(
    make_pool: MakePool, dwf_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pool = make_pool(environ={"DWF_TEST_TOKEN": TOKEN})
    registry = dwf.default_registry()
    registry.register_step(MCPStep(pool=pool))
    registry.register_top_level_key(TopLevelKey("mcp_servers", MCPServersSection))
    document = {
        "id": "caller",
        "name": "Caller",
        "mcp_servers": {
            "dwf": {"url": dwf_server, "headers": {"Authorization": "Bearer ${DWF_TEST_TOKEN}"}}
        },
        "steps": [
            {"id": "start", "type": "start", "next": "call"},
            {
                "id": "call",
                "type": "mcp",
                "server": "dwf",
                "tool": "run_hello",
                "arguments": {"who": "Bo"},
                "output": "answer",
                "next": "done",
            },
            {"id": "done", "type": "end", "result": "$answer.output"},
        ],
    }
    workflow = dwf.load_workflow(yaml.safe_dump(document), registry=registry)
    database = tmp_path / "store.db"
    engine = dwf.Engine(f"sqlite:///{database}", registry=registry)
    try:
        result = await engine.run(workflow)
    finally:
        await engine.close()
    assert result.status == "completed", result.error
    assert result.output == {"hello": "Bo"}
    stored = read_files(tmp_path, "store.db*")
    assert b"${DWF_TEST_TOKEN}" in stored
    assert TOKEN.encode() not in stored
    assert TOKEN not in caplog.text
