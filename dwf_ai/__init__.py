"""dwf_ai: the AI extension of dwf (agents, tools, guardrails, handoffs, file search, MCP calls).

It plugs into dwf only through dwf's public extension API. Its step types are being built; until
then this package registers nothing.
"""

__all__: list[str] = []
