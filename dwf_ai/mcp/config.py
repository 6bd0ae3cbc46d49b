"""The top-level ``mcp_servers`` section: typed settings for each MCP server a workflow calls.

A mapping of server name to settings. A server is started as a subprocess (stdio) or reached
over Streamable HTTP::

    mcp_servers:
      files:                                  # stdio: the server is a subprocess
        command: npx
        args: [-y, "@modelcontextprotocol/server-filesystem", /data]
        env: {LOG_LEVEL: debug}
        cwd: /srv
      github:                                 # Streamable HTTP
        url: https://api.githubcopilot.com/mcp/
        headers:
          Authorization: "Bearer ${GITHUB_TOKEN}"
        timeout: 30                           # seconds per request (default 60)
        connect_timeout: 10                   # seconds to start and handshake (default 30)

The original's spelling is accepted too: ``transport: http | stdio`` and ``command`` as a list
(``command: [python, server.py]``). Without ``transport``, ``url`` means HTTP and ``command``
means stdio.

Every string of a server's settings may use ``${VAR}`` (or ``${VAR:-default}``). Variables are
read from the environment when dwf connects, never when the workflow is loaded, so the stored
definition keeps ``${VAR}`` and secrets are not written to the store. An unset variable without
a default is an error that names it. There is no escape for a literal ``${``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from dwf_ai.mcp.errors import MCPConfigError

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition

__all__ = [
    "MCPServerConfig",
    "MCPServersSection",
    "ResolvedServer",
    "check_mcp_servers",
    "env_references",
    "interpolate",
    "mcp_servers_of",
]

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Names of headers and environment variables whose literal values look like secrets.
_SECRET_WORDS = re.compile(r"auth|token|secret|passw|api[-_]?key|cookie|credential", re.IGNORECASE)
_TRANSPORTS = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamable_http": "http",
    "streamableHttp": "http",
}


class _MissingVariable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def env_references(text: str) -> list[tuple[str, str | None]]:
    """The ``${VAR}`` references in ``text`` as ``(name, default)``; ``default`` is ``None``
    unless written ``${VAR:-default}``. Raises ``ValueError`` for a malformed one."""
    found: list[tuple[str, str | None]] = []
    for match in _PLACEHOLDER.finditer(text):
        body = match.group(1)
        name, sep, default = body.partition(":-")
        if not _VAR_NAME.match(name):
            raise ValueError(
                f"'{match.group(0)}' is not a valid ${{NAME}} reference; write ${{NAME}} or "
                "${NAME:-default}, where NAME is letters, digits and '_'"
            )
        found.append((name, default if sep else None))
    return found


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Replace every ``${VAR}`` in ``text`` with the variable's value from ``environ``.

    ``${VAR:-default}`` uses ``default`` when the variable is unset or empty. An unset variable
    without a default raises ``KeyError`` with its name.
    """

    def replace(match: re.Match[str]) -> str:
        name, sep, default = match.group(1).partition(":-")
        value = environ.get(name)
        if sep:
            return value if value else default
        if value is None:
            raise _MissingVariable(name)
        return value

    try:
        return _PLACEHOLDER.sub(replace, text)
    except _MissingVariable as exc:
        raise KeyError(exc.name) from None


def _scalar_text(value: Any, where: str) -> Any:
    """YAML scalars become strings (``DEBUG: 1`` is ``"1"``, ``true`` is ``"true"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"'{where}' values must be strings, got {type(value).__name__}")
    return value


def _input_json_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema (for editors) describes what the YAML may say, not the normalised model:
    ``transport`` is optional, ``command`` may be a list, scalars become strings, null is
    absent."""
    schema.pop("required", None)
    props = schema["properties"]
    props["transport"] = {"enum": [*_TRANSPORTS, None]}
    props["command"] = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
            {"type": "null"},
        ]
    }
    scalar = {"type": ["string", "number", "boolean"]}
    props["args"] = {"type": ["array", "null"], "items": scalar}
    props["env"] = {"type": ["object", "null"], "additionalProperties": scalar}
    props["headers"] = {"type": ["object", "null"], "additionalProperties": scalar}
    for key in ("timeout", "connect_timeout"):
        props[key]["type"] = ["number", "null"]
    schema["anyOf"] = [{"required": ["command"]}, {"required": ["url"]}]


class MCPServerConfig(BaseModel):
    """How to reach one MCP server. Strings may hold ``${VAR}`` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_input_json_schema)

    transport: Literal["stdio", "http"]
    #: stdio: the executable, its arguments, extra environment variables and working directory.
    #: The server gets only these variables plus a safe few (HOME, PATH, USER, ...).
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    cwd: str | None = None
    #: Streamable HTTP: the endpoint and the headers sent with every request.
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    #: Seconds to wait for the answer to one request (a tool call, a listing).
    timeout: float = Field(default=60.0, gt=0)
    #: Seconds to start the server (or reach it) and complete the MCP handshake.
    connect_timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v is not None}  # null means absent
        transport = data.get("transport")
        if isinstance(transport, str):
            if transport == "sse":
                raise ValueError(
                    "the HTTP+SSE transport is deprecated and not supported; use Streamable HTTP "
                    "('transport: http' with the server's Streamable HTTP endpoint)"
                )
            if transport not in _TRANSPORTS:
                raise ValueError(f"'transport' must be 'stdio' or 'http', got '{transport}'")
            data["transport"] = _TRANSPORTS[transport]
        command = data.get("command")
        if isinstance(command, list):  # the original's spelling: [python, server.py]
            if not command:
                raise ValueError("'command' is an empty list; give the executable to run")
            data["command"] = command[0]
            data["args"] = [*command[1:], *(data.get("args") or [])]
        for key in ("env", "headers"):
            if isinstance(data.get(key), dict):
                data[key] = {str(k): _scalar_text(v, key) for k, v in data[key].items()}
        if isinstance(data.get("args"), list):
            data["args"] = [_scalar_text(v, "args") for v in data["args"]]
        if "transport" not in data:
            has_url, has_command = "url" in data, "command" in data
            if has_url and has_command:
                raise ValueError(
                    "give either 'url' (Streamable HTTP) or 'command' (stdio), not both, or say "
                    "which one with 'transport'"
                )
            if not has_url and not has_command:
                raise ValueError(
                    "an MCP server needs 'url' (Streamable HTTP) or 'command' (a stdio server "
                    "to start), e.g. {url: https://example.com/mcp} or {command: npx, args: [...]}"
                )
            data["transport"] = "http" if has_url else "stdio"
        return data

    @model_validator(mode="after")
    def _consistent(self) -> MCPServerConfig:
        if self.transport == "stdio":
            if not self.command:
                raise ValueError("'transport: stdio' needs 'command' (the server to start)")
            if self.headers:
                raise ValueError("'headers' apply to HTTP servers only; use 'env' for stdio")
        else:
            if not self.url:
                raise ValueError("'transport: http' needs 'url' (the Streamable HTTP endpoint)")
            stdio_only = [k for k in ("args", "env", "cwd") if getattr(self, k)]
            if stdio_only:
                raise ValueError(f"{', '.join(map(repr, stdio_only))} apply to stdio servers only")
            if not self.url.startswith(("http://", "https://", "${")):
                raise ValueError(f"'url' must start with http:// or https://, got '{self.url}'")
        for where, text in self._strings():
            try:
                env_references(text)
            except ValueError as exc:
                raise ValueError(f"'{where}': {exc}") from None
        return self

    def _strings(self) -> list[tuple[str, str]]:
        """Every interpolated string with where it sits (e.g. ``headers.Authorization``)."""
        out: list[tuple[str, str]] = []
        for key in ("command", "cwd", "url"):
            value = getattr(self, key)
            if value is not None:
                out.append((key, value))
        out.extend((f"args[{i}]", v) for i, v in enumerate(self.args))
        out.extend((f"env.{k}", v) for k, v in self.env.items())
        out.extend((f"headers.{k}", v) for k, v in self.headers.items())
        return out

    def variables(self) -> list[str]:
        """The environment variables this server's settings read, without duplicates."""
        names: list[str] = []
        for _, text in self._strings():
            names.extend(n for n, _ in env_references(text) if n not in names)
        return names

    def resolve(self, name: str, environ: Mapping[str, str]) -> ResolvedServer:
        """The settings with every ``${VAR}`` replaced from ``environ``.

        Raises :class:`MCPConfigError` naming the setting and the variable when one is unset.
        """

        def sub(where: str, text: str) -> str:
            try:
                return interpolate(text, environ)
            except KeyError as exc:
                var = exc.args[0]
                raise MCPConfigError(
                    f"MCP server '{name}': '{where}' uses ${{{var}}}, but the environment "
                    f"variable {var} is not set. Set it before running the workflow, or write "
                    f"${{{var}:-}} to use an empty value when it is unset",
                    server=name,
                    variable=var,
                ) from None

        return ResolvedServer(
            name=name,
            transport=self.transport,
            command=sub("command", self.command) if self.command is not None else None,
            args=tuple(sub(f"args[{i}]", v) for i, v in enumerate(self.args)),
            env={k: sub(f"env.{k}", v) for k, v in self.env.items()},
            cwd=sub("cwd", self.cwd) if self.cwd is not None else None,
            url=sub("url", self.url) if self.url is not None else None,
            headers={k: sub(f"headers.{k}", v) for k, v in self.headers.items()},
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
        )


@dataclass(frozen=True)
class ResolvedServer:
    """A server's settings with variables substituted: what a connection is opened with.

    It holds secrets (header and environment values), so it is never stored, logged or shown:
    ``repr`` and :meth:`describe` leave them out.
    """

    name: str
    transport: str
    command: str | None
    args: tuple[str, ...]
    env: dict[str, str] = field(repr=False)
    cwd: str | None
    url: str | None
    headers: dict[str, str] = field(repr=False)
    timeout: float
    connect_timeout: float

    @property
    def key(self) -> str:
        """Identifies the connection: equal settings (after substitution) share one."""
        material = json.dumps(
            [self.transport, self.command, self.args, self.env, self.cwd, self.url, self.headers],
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def describe(self) -> str:
        """Where the server is, safe to show: the command, or the URL without credentials and
        query string."""
        if self.transport == "stdio":
            return f"command '{self.command}'"
        url = self.url or ""
        scheme, sep, rest = url.partition("://")
        authority, slash, path = rest.partition("/")
        authority = authority.rpartition("@")[2]
        path = path.split("?", 1)[0].split("#", 1)[0]
        return f"{scheme}{sep}{authority}{slash}{path}"


def _mapping_only(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, list):
        raise ValueError(
            "'mcp_servers' is a mapping of server name to settings, not a list; write e.g.\n"
            "  mcp_servers:\n    github:\n      url: https://example.com/mcp"
        )
    return value


def _server_name(value: str) -> str:
    if not _SERVER_NAME.match(value):
        raise ValueError(f"server name '{value}' must be 1-64 letters, digits, '_' or '-'")
    return value


#: The parsed section: ``workflow.extensions["mcp_servers"]`` is a ``dict`` of name to config.
MCPServersSection = Annotated[
    dict[Annotated[str, AfterValidator(_server_name)], MCPServerConfig],
    BeforeValidator(_mapping_only),
]


def mcp_servers_of(workflow: WorkflowDefinition) -> dict[str, MCPServerConfig]:
    """The workflow's ``mcp_servers`` section (empty when it has none)."""
    section = workflow.extensions.get("mcp_servers")
    return dict(section) if isinstance(section, Mapping) else {}


def check_mcp_servers(
    section: Mapping[str, MCPServerConfig], workflow: WorkflowDefinition
) -> list[tuple[tuple[str | int, ...], str]]:
    """Static problems of the section: secrets written literally into the workflow.

    A header or environment variable whose name looks like a credential (``Authorization``,
    ``*_TOKEN``, ``*API_KEY*``, ...) must come from the environment as ``${VAR}``; a literal value
    would be stored with every execution of the workflow.
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, server in section.items():
        for key, values in (("headers", server.headers), ("env", server.env)):
            for var, value in values.items():
                if value and _SECRET_WORDS.search(var) and not env_references(value):
                    problems.append(
                        (
                            (name, key, var),
                            f"MCP server '{name}': {key} '{var}' looks like a secret but is "
                            "written literally, so it would be stored with the workflow; read it "
                            f'from the environment instead, e.g. {var}: "${{MY_SECRET}}"',
                        )
                    )
    return problems
