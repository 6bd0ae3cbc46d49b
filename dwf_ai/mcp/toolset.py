"""The tools of MCP servers as an agent offers them to a model.

An agent with ``mcp_servers: [github, files]`` lists each server's tools once per execution
and offers them with their JSON Schemas. Model providers accept tool names of 1-64 letters,
digits, ``_`` and ``-``, unique within a request, so each tool gets a model-facing name: its own
name when that is valid and unique, else ``<server>__<tool>`` made valid. :class:`MCPTool`
remembers which server and tool a model-facing name stands for; :meth:`MCPTool.to_dict` lets an
agent journal the listing, so a resumed execution offers exactly the same tools.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dwf_ai.models.base import ToolSpec

if TYPE_CHECKING:
    from dwf_ai.mcp.client import MCPClientPool
    from dwf_ai.mcp.config import MCPServerConfig

__all__ = ["MCPTool", "list_mcp_tools"]

_VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class MCPTool:
    """One MCP tool offered to a model: ``spec.name`` is the name the model sees, ``tool`` the
    name on ``server``."""

    server: str
    tool: str
    spec: ToolSpec

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "tool": self.tool,
            "name": self.spec.name,
            "description": self.spec.description,
            "parameters": self.spec.parameters,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MCPTool:
        spec = ToolSpec(
            name=data["name"], description=data["description"], parameters=data["parameters"]
        )
        return cls(server=data["server"], tool=data["tool"], spec=spec)


async def list_mcp_tools(
    pool: MCPClientPool,
    server_names: Sequence[str],
    *,
    servers: Mapping[str, MCPServerConfig] | None = None,
    reserved: Collection[str] = (),
) -> list[MCPTool]:
    """The tools of each named server, with model-facing names that are valid, unique among
    themselves and distinct from ``reserved`` (the agent's other tool names)."""
    listed: list[tuple[str, ToolSpec]] = []
    for server in server_names:
        listed.extend((server, spec) for spec in await pool.list_tools(server, servers=servers))
    counts = Counter(spec.name for _, spec in listed)
    taken = set(reserved)
    tools: list[MCPTool] = []
    for server, spec in listed:
        name = spec.name
        if not _VALID.match(name) or counts[name] > 1 or name in taken:
            name = _model_name(f"{server}__{spec.name}", taken)
        taken.add(name)
        offered = ToolSpec(name=name, description=spec.description, parameters=spec.parameters)
        tools.append(MCPTool(server=server, tool=spec.name, spec=offered))
    return tools


def _model_name(wanted: str, taken: Collection[str]) -> str:
    name = _INVALID_CHARS.sub("_", wanted)
    if len(name) <= 64 and name not in taken:
        return name
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:8]
    return f"{name[:55]}_{digest}"
