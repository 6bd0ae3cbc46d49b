"""What an :class:`~dwf_ai.AIExtension` gives its agent and handoff steps (:class:`AIRuntime`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dwf_ai.definitions import AgentDef
from dwf_ai.tools import ToolRegistry

if TYPE_CHECKING:
    from dwf_ai.guardrails.moderation import ModeratorLike
    from dwf_ai.mcp.client import MCPClientPool
    from dwf_ai.models.base import Model
    from dwf_ai.models.config import ProviderConfig
    from dwf_ai.search.index import SearchIndex

__all__ = ["AIRuntime"]


@dataclass
class AIRuntime:
    """Models, provider config and tools, plus the resources agents share with the other AI
    steps of the engine: the MCP connections (``mcp_pool``), the moderator guardrails ask
    (``moderator``) and the file-search index (``search_index``).

    Left ``None``, ``mcp_pool`` is made on first use and ``moderator`` and ``search_index`` are
    the defaults (the OpenAI moderation endpoint; the index beside the dwf store).
    """

    models: Mapping[str, Model] = field(default_factory=dict)
    config: ProviderConfig | None = None
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    mcp_pool: MCPClientPool | None = None
    moderator: ModeratorLike | None = None
    search_index: SearchIndex | None = None
    _resolved: dict[tuple[str, str | None], Model] = field(default_factory=dict, repr=False)

    def model_for(self, agent: AgentDef) -> Model:
        """The registry's model for ``agent.model`` when there is one, else the provider's
        (``dwf_ai.models.resolve_model``; raises ``ModelError`` for an unknown name). A provider
        model is made once and reused, so its HTTP connections are too."""
        registered = self.models.get(agent.model)
        if registered is not None:
            return registered
        key = (agent.model, agent.provider)
        made = self._resolved.get(key)
        if made is None:
            from dwf_ai.models import resolve_model  # the providers load on first use

            made = resolve_model(
                agent.model, provider=agent.provider, config=self.config, registry=self.models
            )
            self._resolved[key] = made
        return made

    def pool(self) -> MCPClientPool:
        """The MCP connections agents call tools through (made on first use when not given)."""
        if self.mcp_pool is None:
            from dwf_ai.mcp.client import MCPClientPool

            self.mcp_pool = MCPClientPool()
        return self.mcp_pool

    async def aclose(self) -> None:
        """Close the provider models this runtime made (not the ones it was given)."""
        made, self._resolved = list(self._resolved.values()), {}
        for model in made:
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()
