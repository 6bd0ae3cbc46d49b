"""The client over stdio against real server processes: the official reference server
(``@modelcontextprotocol/server-everything``, Node) and a small Python test server."""

# Fixtures imported from mcp_fixtures are test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from mcp_fixtures import (  # noqa: F401 (fixtures are found by name)
    counter_file,
    errlog,
    everything_js,
    everything_server,
    make_pool,
    process_alive,
    test_server,
    test_server_script,
    wait_until,
)

from dwf_ai.mcp import (
    IDEMPOTENCY_META_KEY,
    MCPClientPool,
    MCPConfigError,
    MCPConnectionError,
    MCPInvalidArguments,
    MCPTimeoutError,
    MCPTool,
    MCPToolError,
    MCPToolNotFound,
    list_mcp_tools,
)

pytestmark = pytest.mark.slow

MakePool = Callable[..., MCPClientPool]
#: The reference-server tests share one event loop and one connection (starting Node costs time).
shared_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def everything(
    everything_server: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MCPClientPool]:
    """A pool with the reference server as 'everything', shared by this module's tests."""
    log = tmp_path_factory.mktemp("everything") / "stderr.log"
    with log.open("w") as errlog:
        pool = MCPClientPool({"everything": everything_server}, errlog=errlog)
        yield pool
        await pool.aclose()


async def server_pid(pool: MCPClientPool, name: str = "py") -> int:
    result = await pool.call_tool(name, "pid")
    pid: int = result.structured["pid"]
    return pid


# ------------------------------------------------------------------------- the reference server


@shared_loop
async def test_tools_of_the_reference_server_are_listed_with_their_schemas(
    everything: MCPClientPool,
) -> None:
    pool = everything
    tools = {tool.name: tool for tool in await pool.list_tools("everything")}
    assert {"echo", "get-sum", "get-structured-content"} <= set(tools)
    echo = tools["echo"]
    assert echo.description == "Echoes back the input string"
    assert echo.parameters["properties"]["message"]["type"] == "string"
    assert echo.parameters["required"] == ["message"]
    assert "$schema" not in echo.parameters


@shared_loop
async def test_a_tool_with_structured_content_returns_it(everything: MCPClientPool) -> None:
    pool = everything
    result = await pool.call_tool("everything", "get-structured-content", {"location": "Chicago"})
    assert not result.is_error
    assert result.value == {"temperature": 36, "conditions": "Light rain / drizzle", "humidity": 82}


@shared_loop
async def test_a_tool_with_text_content_returns_the_text(everything: MCPClientPool) -> None:
    pool = everything
    assert (await pool.call_tool("everything", "echo", {"message": "hi"})).value == "Echo: hi"
    result = await pool.call_tool("everything", "get-sum", {"a": 2, "b": 3})
    assert "5" in result.text
    image = await pool.call_tool("everything", "get-tiny-image", {})
    assert "[image: image/png]" in image.text
    assert any(block["type"] == "image" for block in image.content)


async def test_env_values_are_interpolated_and_given_to_the_server(
    make_pool: MakePool, everything_server: dict[str, Any]
) -> None:
    server = {**everything_server, "env": {"DWF_PROBE": "${PROBE_VALUE}", "OTHER": "${NOPE:-d}"}}
    pool = make_pool({"everything": server}, environ={"PROBE_VALUE": "from-env"})
    text = (await pool.call_tool("everything", "get-env", {})).text
    assert '"DWF_PROBE": "from-env"' in text
    assert '"OTHER": "d"' in text


@shared_loop
async def test_an_unknown_tool_names_the_tools_the_server_has(everything: MCPClientPool) -> None:
    pool = everything
    with pytest.raises(MCPToolNotFound) as info:
        await pool.call_tool("everything", "ecoh", {"message": "x"})
    message = str(info.value)
    assert "MCP server 'everything' has no tool 'ecoh' (did you mean 'echo'?)" in message
    assert "get-sum" in message
    assert info.value.facts == {"server": "everything", "tool": "ecoh"}


@shared_loop
async def test_arguments_that_violate_the_schema_are_refused_before_sending(
    everything: MCPClientPool,
) -> None:
    pool = everything
    with pytest.raises(MCPInvalidArguments) as info:
        await pool.call_tool("everything", "get-sum", {"a": "two"})
    message = str(info.value)
    assert "do not match its input schema" in message
    assert "'b' is a required property" in message
    assert "a: 'two' is not of type 'number'" in message


# ------------------------------------------------------------------------- the Python test server


async def test_calls_reuse_one_connection_even_when_concurrent(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    pool = make_pool({"py": test_server})
    pids = await asyncio.gather(*(server_pid(pool) for _ in range(5)))
    assert len(set(pids)) == 1
    assert await server_pid(pool) == pids[0]


async def test_a_call_past_its_timeout_fails_and_the_connection_stays_usable(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    pool = make_pool({"py": test_server})
    await server_pid(pool)
    started = time.monotonic()
    with pytest.raises(MCPTimeoutError, match=r"did not answer tools/call 'slow' within 0\.3s"):
        await pool.call_tool("py", "slow", {"seconds": 30}, timeout=0.3)
    assert time.monotonic() - started < 3
    assert (await pool.call_tool("py", "slow", {"seconds": 0})).text == "done"


async def test_a_server_default_timeout_applies_to_every_call(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    pool = make_pool({"py": {**test_server, "timeout": 0.3}})
    with pytest.raises(MCPTimeoutError, match=r"within 0\.3s"):
        await pool.call_tool("py", "slow", {"seconds": 30})


async def test_a_json_rpc_error_from_the_server_is_a_tool_error(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    pool = make_pool({"py": test_server})
    with pytest.raises(MCPToolError) as info:
        await pool.call_tool("py", "refuse")
    assert str(info.value) == (
        "MCP server 'py' refused tools/call 'refuse': the backend is down (error -32603)"
    )


async def test_a_tool_error_is_returned_with_the_servers_message(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    pool = make_pool({"py": test_server})
    result = await pool.call_tool("py", "fail", {"reason": "the disk is full"})
    assert result.is_error
    assert "the disk is full" in result.text


async def test_the_idempotency_key_reaches_the_server_in_meta(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    pool = make_pool({"py": test_server})
    result = await pool.call_tool("py", "meta", idempotency_key="exec-1:step")
    assert result.structured["meta"][IDEMPOTENCY_META_KEY] == "exec-1:step"


async def test_a_server_that_exits_mid_call_fails_the_call_and_the_next_call_reconnects(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    pool = make_pool({"py": test_server})
    first = await server_pid(pool)
    with pytest.raises(MCPConnectionError) as info:
        await pool.call_tool("py", "crash")
    message = str(info.value)
    assert "closed during tools/call 'crash'" in message
    assert "may or may not have run" in message
    second = await server_pid(pool)
    assert second != first


async def test_a_server_that_died_between_calls_is_restarted_transparently(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    pool = make_pool({"py": test_server})
    first = await server_pid(pool)
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: all(c.closed for c in pool._connections.values()))
    assert await server_pid(pool) != first


async def test_closing_the_pool_stops_the_server_process(
    errlog: Any, test_server: dict[str, Any]
) -> None:
    pool = MCPClientPool({"py": test_server}, errlog=errlog)
    pid = await server_pid(pool)
    await pool.aclose()
    await wait_until(lambda: not process_alive(pid))


async def test_a_command_that_does_not_exist_is_a_clear_error(make_pool: MakePool) -> None:
    pool = make_pool({"ghost": {"command": "dwf-no-such-mcp-server"}})
    with pytest.raises(MCPConnectionError) as info:
        await pool.call_tool("ghost", "anything")
    assert str(info.value) == (
        "cannot start MCP server 'ghost' (command 'dwf-no-such-mcp-server'): "
        "'dwf-no-such-mcp-server' was not found (is it installed and on PATH?)"
    )


async def test_a_missing_working_directory_is_named(make_pool: MakePool, tmp_path: Path) -> None:
    pool = make_pool({"s": {"command": sys.executable, "cwd": str(tmp_path / "missing")}})
    with pytest.raises(MCPConnectionError, match=r"working directory .* does not exist"):
        await pool.list_tools("s")


async def test_a_server_that_exits_at_start_is_a_clear_error(make_pool: MakePool) -> None:
    pool = make_pool({"s": {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]}})
    with pytest.raises(MCPConnectionError, match="closed the connection during the MCP handshake"):
        await pool.list_tools("s")


async def test_a_process_that_never_answers_times_out_at_connect(make_pool: MakePool) -> None:
    silent = [sys.executable, "-c", "import sys; sys.stdin.read()"]  # reads, never answers
    pool = make_pool({"s": {"command": silent, "connect_timeout": 0.5}})
    started = time.monotonic()
    with pytest.raises(MCPTimeoutError, match=r"did not complete the MCP handshake within 0\.5s"):
        await pool.list_tools("s")
    assert time.monotonic() - started < 5  # the timeout plus the SDK's bounded shutdown


async def test_an_unset_variable_fails_before_anything_starts(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    server = {**test_server, "env": {"TOKEN": "${DWF_TEST_UNSET_VARIABLE}"}}
    pool = make_pool({"py": server}, environ={})
    with pytest.raises(MCPConfigError, match=r"'env.TOKEN' uses \$\{DWF_TEST_UNSET_VARIABLE\}"):
        await pool.list_tools("py")
    assert pool._connections == {}


async def test_a_changed_variable_opens_a_new_connection(
    make_pool: MakePool, test_server: dict[str, Any]
) -> None:
    environ = {"MODE": "a"}
    server = {**test_server, "env": {**test_server["env"], "MODE": "${MODE}"}}
    pool = make_pool({"py": server}, environ=environ)
    first = await server_pid(pool)
    environ["MODE"] = "b"
    assert await server_pid(pool) != first


async def test_closing_the_pool_while_a_server_starts_is_bounded(errlog: Any) -> None:
    silent = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    pool = MCPClientPool({"s": {"command": silent, "connect_timeout": 30}}, errlog=errlog)
    waiting = asyncio.ensure_future(pool.list_tools("s"))
    await wait_until(lambda: bool(pool._connections))
    started = time.monotonic()
    await pool.aclose()
    with pytest.raises(MCPConnectionError, match="closed while it was being opened"):
        await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - started < 5


@shared_loop
async def test_agent_tools_get_valid_unique_model_names(everything: MCPClientPool) -> None:
    twice = {"a": everything.servers["everything"], "b.v2": everything.servers["everything"]}
    tools = await list_mcp_tools(everything, ["a", "b.v2"], servers=twice, reserved={"echo"})
    names = [tool.spec.name for tool in tools]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) for name in names)
    by_name = {tool.spec.name: tool for tool in tools}
    assert (by_name["a__echo"].server, by_name["a__echo"].tool) == ("a", "echo")
    assert (by_name["b_v2__get-sum"].server, by_name["b_v2__get-sum"].tool) == ("b.v2", "get-sum")
    assert MCPTool.from_dict(by_name["a__echo"].to_dict()) == by_name["a__echo"]


@shared_loop
async def test_a_tool_offered_to_an_agent_calls_the_server(everything: MCPClientPool) -> None:
    (echo,) = [t for t in await list_mcp_tools(everything, ["everything"]) if t.tool == "echo"]
    assert echo.spec.name == "echo"
    result = await everything.call_tool(echo.server, echo.tool, {"message": "from a model"})
    assert result.model_text() == "Echo: from a model"
