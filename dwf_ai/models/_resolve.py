"""From a model spec (``"gpt-4o-mini"``, ``"anthropic:claude-sonnet-5"``, a registered name) to a
:class:`~dwf_ai.models.base.Model`."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping

from dwf_ai.models.anthropic import AnthropicModel
from dwf_ai.models.base import Model, ModelError
from dwf_ai.models.config import ProviderConfig
from dwf_ai.models.openai import OpenAIModel

_PROVIDERS: dict[str, Callable[[str, ProviderConfig], Model]] = {
    "openai": OpenAIModel,
    "anthropic": AnthropicModel,
}
_NAME_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(gpt-|chatgpt-)"), "openai"),
    (re.compile(r"^o\d+(-|$)"), "openai"),
    (re.compile(r"^claude-"), "anthropic"),
)
RULES = """\
  1. a name in the registry (test doubles, your own models){registered}
  2. a prefix: 'openai:NAME' or 'anthropic:NAME'
  3. the provider key: 'openai' (also OpenAI-compatible servers: Ollama, vLLM, LiteLLM) or \
'anthropic'
  4. the name itself: 'gpt-*', 'chatgpt-*', 'o1', 'o3-mini', ... -> openai; \
'claude-*' -> anthropic"""


def resolve_model(
    spec: str,
    *,
    provider: str | None = None,
    config: ProviderConfig | None = None,
    registry: Mapping[str, Model] | None = None,
) -> Model:
    """The model that ``spec`` names.

    The rules, first match wins: a name in ``registry``; an ``openai:`` or ``anthropic:``
    prefix; ``provider``; the name itself (``gpt-*``, ``chatgpt-*``, ``o1``/``o3``/``o4-*`` are
    OpenAI, ``claude-*`` is Anthropic). Names may contain colons (``openai:llama3.1:8b``).

    Making the model needs neither a key nor the SDK; both are checked on the first request.

    Raises:
        ModelError: ``code="unknown_model"`` when no rule matches, or the prefix and
            ``provider`` disagree; the message lists the rules.
    """
    spec = spec.strip() if isinstance(spec, str) else ""
    registry = registry or {}
    if not spec:
        raise _unknown("A model name is required (got an empty one).", registry)
    if spec in registry:
        return registry[spec]
    prefix, colon, rest = spec.partition(":")
    explicit = prefix.lower() if colon and prefix.lower() in _PROVIDERS else None
    name = rest.strip() if explicit else spec
    wanted = provider.strip().lower() if provider else None
    if wanted is not None and wanted not in _PROVIDERS:
        raise _unknown(
            f"Unknown provider {provider!r} for model {spec!r}; known providers: "
            f"{', '.join(_PROVIDERS)}.",
            registry,
        )
    if explicit and wanted and explicit != wanted:
        raise _unknown(
            f"Model {spec!r} says provider {explicit!r} but the provider key says {wanted!r}; "
            "keep one.",
            registry,
        )
    if not name:
        raise _unknown(f"Model {spec!r} has a provider prefix but no model name.", registry)
    chosen = explicit or wanted or _by_name(name)
    if chosen is None:
        hint = ""
        close = difflib.get_close_matches(spec, list(registry), n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
        elif colon:
            hint = f" {prefix!r} is not a provider prefix and {spec!r} is not registered."
        raise _unknown(
            f"Cannot tell which provider serves model {spec!r}.{hint} dwf picks a model by "
            f"these rules, in order:\n{{rules}}\nFor an OpenAI-compatible server write "
            f"'openai:{name}' (and set its base_url or OPENAI_BASE_URL).",
            registry,
        )
    return _PROVIDERS[chosen](name, config or ProviderConfig())


def _by_name(name: str) -> str | None:
    lowered = name.lower()
    for pattern, provider in _NAME_RULES:
        if pattern.search(lowered):
            return provider
    return None


def _unknown(message: str, registry: Mapping[str, Model]) -> ModelError:
    names = sorted(registry)
    shown = ", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
    registered = f" (registered: {shown})" if names else " (none registered)"
    rules = RULES.format(registered=registered)
    if "{rules}" in message:
        message = message.replace("{rules}", rules)
    else:
        message = f"{message} The rules, in order:\n{rules}"
    return ModelError(message, code="unknown_model")
