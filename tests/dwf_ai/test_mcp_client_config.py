"""The ``mcp_servers`` section, ``${VAR}`` interpolation, results and static checks.

No processes are started here."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
from pydantic import TypeAdapter, ValidationError

import dwf
import dwf_ai.mcp
from dwf.extensions import TopLevelKey
from dwf_ai.mcp import (
    MCPClientPool,
    MCPConfigError,
    MCPServerConfig,
    MCPServersSection,
    MCPStep,
    ToolResult,
    check_mcp_servers,
)
from dwf_ai.mcp.config import env_references, interpolate

SECTION: TypeAdapter[dict[str, MCPServerConfig]] = TypeAdapter(MCPServersSection)


def registry(pool: MCPClientPool | None = None) -> dwf.Registry:
    reg = dwf.default_registry()
    reg.register_step(MCPStep(pool=pool or MCPClientPool()))
    reg.register_top_level_key(
        TopLevelKey("mcp_servers", MCPServersSection, check=check_mcp_servers)
    )
    return reg


def workflow_yaml(servers: str, step: str = "server: github, tool: search") -> str:
    return f"""
id: w
name: W
mcp_servers:
{servers}
steps:
  - {{id: start, type: start, next: call}}
  - {{id: call, type: mcp, {step}}}
"""


def test_the_public_api_is_pinned() -> None:
    assert sorted(dwf_ai.mcp.__all__) == [
        "IDEMPOTENCY_META_KEY",
        "MCPClientError",
        "MCPClientPool",
        "MCPConfig",
        "MCPConfigError",
        "MCPConnectionError",
        "MCPInvalidArguments",
        "MCPInvalidCall",
        "MCPServerConfig",
        "MCPServersSection",
        "MCPStep",
        "MCPTimeoutError",
        "MCPTool",
        "MCPToolError",
        "MCPToolNotFound",
        "ToolResult",
        "check_mcp_servers",
        "list_mcp_tools",
        "mcp_servers_of",
    ]


def test_importing_the_package_and_building_a_pool_does_not_import_the_sdk() -> None:
    code = (
        "import sys, dwf_ai.mcp as m; m.MCPStep(m.MCPClientPool()); "
        "print(any(n == 'mcp' or n.startswith('mcp.') for n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_stdio_and_http_servers_are_told_apart_by_their_keys() -> None:
    section = SECTION.validate_python(
        {
            "files": {"command": "npx", "args": ["-y", "server"], "env": {"A": "1"}, "cwd": "/"},
            "github": {"url": "https://example.com/mcp", "headers": {"X-Key": "${KEY}"}},
        }
    )
    assert section["files"].transport == "stdio"
    assert section["files"].command == "npx"
    assert section["files"].args == ["-y", "server"]
    assert section["github"].transport == "http"
    assert section["github"].timeout == 60.0
    assert section["github"].connect_timeout == 30.0


def test_the_original_shape_is_accepted() -> None:
    # transport given, command as a list, and the nulls the original parser passes.
    section = SECTION.validate_python(
        {
            "local": {"transport": "stdio", "command": ["python", "server.py"], "headers": None},
            "remote": {"url": "https://x.example/mcp", "transport": None, "headers": None},
            "explicit": {"transport": "http", "url": "https://y.example/mcp", "command": None},
        }
    )
    assert section["local"].command == "python"
    assert section["local"].args == ["server.py"]
    assert section["remote"].transport == "http"
    assert section["remote"].headers == {}
    assert section["explicit"].transport == "http"


def test_a_command_list_comes_before_args() -> None:
    config = MCPServerConfig.model_validate({"command": ["node", "a.js"], "args": ["stdio"]})
    assert (config.command, config.args) == ("node", ["a.js", "stdio"])


def test_yaml_scalars_in_env_and_headers_become_strings() -> None:
    config = MCPServerConfig.model_validate(
        {"command": "x", "env": {"DEBUG": 1, "ON": True, "RATIO": 0.5}}
    )
    assert config.env == {"DEBUG": "1", "ON": "true", "RATIO": "0.5"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({}, "needs 'url' (Streamable HTTP) or 'command'"),
        ({"url": "http://x/mcp", "command": "y"}, "not both"),
        ({"transport": "sse", "url": "http://x/sse"}, "HTTP+SSE transport is deprecated"),
        ({"transport": "grpc", "url": "http://x"}, "'transport' must be 'stdio' or 'http'"),
        ({"transport": "stdio", "url": "http://x"}, "needs 'command'"),
        ({"transport": "http", "command": "x"}, "needs 'url'"),
        ({"url": "ftp://x/mcp"}, "must start with http:// or https://"),
        ({"command": "x", "headers": {"A": "b"}}, "'headers' apply to HTTP servers only"),
        ({"url": "http://x/mcp", "env": {"A": "b"}}, "apply to stdio servers only"),
        ({"url": "http://x/${}"}, "not a valid ${NAME} reference"),
        ({"command": "x", "args": ["${1BAD}"]}, "not a valid ${NAME} reference"),
        ({"command": []}, "empty list"),
        ({"command": "x", "timeout": 0}, "greater than 0"),
    ],
)
def test_bad_server_settings_are_explained(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match="x") as info:
        SECTION.validate_python({"x": entry})
    assert message in str(info.value)


def test_a_list_section_shows_the_mapping_form() -> None:
    with pytest.raises(ValidationError) as info:
        SECTION.validate_python([{"name": "github", "url": "http://x"}])
    assert "mapping of server name to settings" in str(info.value)


def test_an_empty_section_is_no_servers() -> None:
    assert SECTION.validate_python(None) == {}


def test_placeholders_are_replaced_from_the_environment() -> None:
    env = {"TOKEN": "t0k", "EMPTY": ""}
    assert interpolate("Bearer ${TOKEN}", env) == "Bearer t0k"
    assert interpolate("${MISSING:-fallback}/${EMPTY:-x}", env) == "fallback/x"
    assert interpolate("${MISSING:-}", env) == ""
    assert interpolate("no env_references $TOKEN", env) == "no env_references $TOKEN"
    assert env_references("${A} and ${B:-c}") == [("A", None), ("B", "c")]
    with pytest.raises(KeyError, match="MISSING"):
        interpolate("${MISSING}", env)


def test_resolving_names_the_unset_variable_and_never_a_value() -> None:
    config = MCPServerConfig.model_validate(
        {"url": "https://x.example/mcp", "headers": {"Authorization": "Bearer ${GH_TOKEN}"}}
    )
    with pytest.raises(MCPConfigError) as info:
        config.resolve("github", {})
    message = str(info.value)
    assert "'headers.Authorization' uses ${GH_TOKEN}" in message
    assert "environment variable GH_TOKEN is not set" in message
    assert info.value.facts == {"server": "github", "variable": "GH_TOKEN"}
    resolved = config.resolve("github", {"GH_TOKEN": "s3cret"})
    assert resolved.headers == {"Authorization": "Bearer s3cret"}
    assert "s3cret" not in repr(resolved)


def test_every_string_of_a_server_is_interpolated() -> None:
    config = MCPServerConfig.model_validate(
        {"command": "${BIN}", "args": ["--root", "${ROOT}"], "env": {"K": "${K}"}, "cwd": "${D}"}
    )
    assert config.variables() == ["BIN", "D", "ROOT", "K"]
    resolved = config.resolve("s", {"BIN": "node", "ROOT": "/r", "K": "v", "D": "/tmp"})
    assert (resolved.command, resolved.args, resolved.env, resolved.cwd) == (
        "node",
        ("--root", "/r"),
        {"K": "v"},
        "/tmp",
    )


def test_settings_hide_headers_and_env_from_repr() -> None:
    config = MCPServerConfig.model_validate(
        {"url": "https://x.example/mcp", "headers": {"Authorization": "literal-secret"}}
    )
    assert "literal-secret" not in repr(config)


def test_describing_a_server_leaves_credentials_out() -> None:
    config = MCPServerConfig.model_validate({"url": "https://user:pw@h.example:8443/mcp?key=k#f"})
    assert config.resolve("s", {}).describe() == "https://h.example:8443/mcp"
    stdio = MCPServerConfig.model_validate({"command": "npx", "env": {"TOKEN": "t"}})
    assert stdio.resolve("s", {}).describe() == "command 'npx'"


def test_equal_settings_share_a_connection_key_and_changed_secrets_do_not() -> None:
    config = MCPServerConfig.model_validate(
        {"url": "https://x.example/mcp", "headers": {"Authorization": "Bearer ${T}"}}
    )
    first = config.resolve("a", {"T": "1"})
    assert first.key == config.resolve("b", {"T": "1"}).key
    assert first.key != config.resolve("a", {"T": "2"}).key


def test_the_stored_definition_keeps_the_placeholders() -> None:
    text = workflow_yaml(
        '  github: {url: "https://x.example/mcp", headers: {Authorization: "Bearer ${GH_TOKEN}"}}'
    )
    workflow = dwf.load_workflow(text, registry=registry())
    assert "Bearer ${GH_TOKEN}" in workflow.canonical_json()
    section = workflow.extensions["mcp_servers"]
    assert section["github"].headers == {"Authorization": "Bearer ${GH_TOKEN}"}


def test_literal_secrets_in_the_section_are_reported() -> None:
    section = SECTION.validate_python(
        {
            "gh": {"url": "https://x/mcp", "headers": {"Authorization": "Bearer abc"}},
            "ok": {"url": "https://x/mcp", "headers": {"Authorization": "Bearer ${T}"}},
            "files": {"command": "x", "env": {"API_KEY": "abc", "LOG_LEVEL": "debug"}},
        }
    )
    problems = check_mcp_servers(section, workflow=None)  # type: ignore[arg-type]
    assert [path for path, _ in problems] == [
        ("gh", "headers", "Authorization"),
        ("files", "env", "API_KEY"),
    ]
    assert "would be stored with the workflow" in problems[0][1]


def test_a_step_naming_an_undefined_server_fails_validation() -> None:
    text = workflow_yaml("  github: {url: https://x.example/mcp}", "server: gihtub, tool: search")
    with pytest.raises(dwf.WorkflowValidationError) as info:
        dwf.load_workflow(text, registry=registry())
    assert "unknown MCP server 'gihtub' (did you mean 'github'?)" in str(info.value)


def test_servers_configured_on_the_pool_satisfy_validation() -> None:
    pool = MCPClientPool({"shared": {"url": "https://x.example/mcp"}})
    text = """
id: w
name: W
steps:
  - {id: start, type: start, next: call}
  - {id: call, type: mcp, server: shared, tool: search}
"""
    workflow = dwf.load_workflow(text, registry=registry(pool))
    assert workflow.extensions == {}


def test_bad_step_keys_are_reported_with_the_file_position() -> None:
    text = workflow_yaml("  github: {url: https://x/mcp}", "server: github, tool: t, argumens: {}")
    with pytest.raises(dwf.WorkflowLoadError, match="unknown key 'argumens'"):
        dwf.load_workflow(text, registry=registry())
    text = workflow_yaml("  github: {url: https://x/mcp}", "server: github, tool: t, arguments: x")
    with pytest.raises(dwf.WorkflowValidationError, match="'arguments' must be a mapping"):
        dwf.load_workflow(text, registry=registry())


def test_an_undefined_server_is_a_clear_error_at_call_time() -> None:
    pool = MCPClientPool({"github": {"url": "https://x.example/mcp"}})
    with pytest.raises(MCPConfigError, match="MCP server 'gihub' is not defined") as info:
        pool.config("gihub", {"files": MCPServerConfig(transport="stdio", command="x")})
    assert "did you mean 'github'" in str(info.value)
    assert "Defined servers: files, github" in str(info.value)


def test_the_editor_schema_accepts_what_the_parser_accepts() -> None:
    from dwf.dsl.schema import language_schema

    schema = language_schema(registry())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema["$defs"]["MCPServerConfig"])
    accepted = [
        {"command": ["python", "server.py"], "transport": None, "headers": None},
        {"url": "https://x/mcp", "headers": {"X-Retries": 3}, "timeout": None},
        {"command": "npx", "env": {"DEBUG": True}, "transport": "stdio"},
    ]
    for entry in accepted:
        SECTION.validate_python({"s": entry})
        assert list(validator.iter_errors(entry)) == []
    assert list(validator.iter_errors({"transport": "stdio"}))


def test_tool_results_read_as_structured_content_or_text() -> None:
    result = ToolResult(
        content=[
            {"type": "text", "text": "first"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "inside"}},
            {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AA=="}},
            {"type": "resource_link", "uri": "file:///c", "name": "c"},
        ]
    )
    assert result.text == (
        "first\n[image: image/png]\ninside\n[resource: file:///b.bin]\n[resource link: file:///c]"
    )
    assert result.value == result.text
    structured = ToolResult(content=[], structured={"t": 1})
    assert structured.value == {"t": 1}
    assert structured.model_text() == json.dumps({"t": 1})
    assert ToolResult.from_dict(json.loads(json.dumps(structured.to_dict()))) == structured
