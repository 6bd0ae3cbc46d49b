"""``AIExtension``: plugs agents, tools and the AI step types into a dwf :class:`Registry`.

::

    registry = dwf.default_registry()
    registry.install(AIExtension(models={"gpt-4o-mini": ScriptedModel([...])}, tools=my_tools))
    workflow = dwf.load_workflow(text, registry=registry)
    engine = dwf.Engine("sqlite:///runs.db", registry=registry, services={...})

Installed through the ``dwf.extensions`` entry point (``ai = "dwf_ai:AIExtension"``) it takes
no arguments: models are then resolved by name from the providers' SDKs and their environment
variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from dwf.extensions import Registry, TopLevelKey
from dwf_ai.definitions import AgentsSection, ToolsSection
from dwf_ai.guardrails import DefaultModerator, GuardrailStep
from dwf_ai.mcp import MCPClientPool, MCPServersSection, MCPStep, check_mcp_servers
from dwf_ai.search import FileSearchStep, SearchIndex
from dwf_ai.steps import AgentStep, AIRuntime, HandoffStep
from dwf_ai.tools import ToolRegistry

if TYPE_CHECKING:
    from dwf_ai.models.base import Model, Moderator
    from dwf_ai.models.config import ProviderConfig

__all__ = ["AIExtension"]


class AIExtension:
    """The AI extension of dwf (name ``ai``).

    Args:
        models: Models by name; a name here wins over the providers (tests pass scripted
            models; applications can pin configured ones).
        config: API keys, base URLs and timeouts for the OpenAI and Anthropic providers
            (default: from the environment).
        tools: Python tools that agents may name in their ``tools`` list.
        moderator: What ``moderation`` guardrail checks call, in ``guardrail`` steps and in
            agents' input and output guardrails (default: the OpenAI moderation endpoint,
            resolved on first use).
        mcp_pool: The MCP connections ``mcp`` steps and agents share (default: a new pool).
        search_index: The index ``file_search`` steps and agents' ``file_search`` tools use
            (default: ``dwf-search.db`` beside the dwf store, opened on first use).
    """

    name = "ai"

    def __init__(
        self,
        models: Mapping[str, Model] | None = None,
        config: ProviderConfig | None = None,
        tools: ToolRegistry | None = None,
        moderator: Moderator | None = None,
        mcp_pool: MCPClientPool | None = None,
        search_index: SearchIndex | None = None,
    ) -> None:
        #: Connections to external MCP servers, shared by `mcp` steps and agents of the engine.
        self.mcp_pool = mcp_pool if mcp_pool is not None else MCPClientPool()
        #: The moderation endpoint guardrails use (the OpenAI provider by default; lazy).
        self.moderator = moderator if moderator is not None else DefaultModerator(config)
        #: The file-search index of `file_search` steps and agents' file_search tools.
        self.search_index = search_index if search_index is not None else SearchIndex()
        #: What agent and handoff steps use: models, tools, and the three resources above.
        self.runtime = AIRuntime(
            models=dict(models or {}),
            config=config,
            tools=tools or ToolRegistry(),
            mcp_pool=self.mcp_pool,
            moderator=self.moderator,
            search_index=self.search_index,
        )

    @property
    def tools(self) -> ToolRegistry:
        return self.runtime.tools

    def setup(self, registry: Registry) -> None:
        registry.register_top_level_key(
            TopLevelKey(
                "agents",
                AgentsSection,
                description="LLM agents: model, instructions, tools, handoffs, settings.",
            )
        )
        registry.register_top_level_key(
            TopLevelKey(
                "tools",
                ToolsSection,
                description="Tools for agents, each bound to a registered service method.",
            )
        )
        registry.register_top_level_key(
            TopLevelKey(
                "mcp_servers",
                MCPServersSection,
                description="External MCP servers that mcp steps and agents call.",
                check=check_mcp_servers,
            )
        )
        registry.register_step(AgentStep(self.runtime))
        registry.register_step(HandoffStep(self.runtime))
        registry.register_step(MCPStep(pool=self.mcp_pool))
        registry.register_step(GuardrailStep(moderator=self.moderator))
        registry.register_step(FileSearchStep(index=self.search_index))

    async def aclose(self) -> None:
        """Close the MCP connections, the provider models made for agents and the moderator's
        client (``Engine.close()`` calls it)."""
        await self.mcp_pool.aclose()
        await self.runtime.aclose()
        close = getattr(self.moderator, "aclose", None)
        if close is not None:
            await close()
