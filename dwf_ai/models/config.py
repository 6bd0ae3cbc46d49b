"""Where the providers are and how to reach them: keys, endpoints, timeouts and retries.

Every field left unset falls back, when the client is made, to the variables the official SDKs
read themselves, so a deployment that already sets them needs no configuration:

=============  ======================  =======================
provider       key                     endpoint
=============  ======================  =======================
``openai``     ``OPENAI_API_KEY``      ``OPENAI_BASE_URL``
``anthropic``  ``ANTHROPIC_API_KEY``   ``ANTHROPIC_BASE_URL``
=============  ======================  =======================

Keys are secrets: the ``repr`` of these objects shows ``'***'`` instead, and nothing in
``dwf_ai.models`` logs, journals or puts a key in an error message. Prefer ``api_key_env`` (the
name of a variable holding the key) over ``api_key`` in files that are checked in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ProviderConfig", "ProviderSettings"]

#: The providers dwf knows, and the environment variables their SDKs read.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
}

_SETTING_KEYS = ("api_key", "api_key_env", "base_url", "timeout", "max_retries")


@dataclass(frozen=True, repr=False)
class ProviderSettings:
    """How to reach one provider. ``None`` means "the SDK's environment variable or default".

    Attributes:
        api_key: The key itself. Prefer ``api_key_env`` in checked-in configuration.
        api_key_env: The environment variable that holds the key, instead of the SDK's usual
            one (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``); handy for a second OpenAI-compatible
            server such as a LiteLLM proxy.
        base_url: The endpoint, e.g. ``http://localhost:11434/v1`` for Ollama.
        timeout: Seconds for one HTTP request; ``None`` keeps the SDK's 10 minutes.
        max_retries: How often the SDK retries rate limits (429), server errors (5xx),
            timeouts and dropped connections, honouring ``Retry-After``. ``0`` disables.
    """

    api_key: str | None = None
    api_key_env: str | None = None
    base_url: str | None = None
    timeout: float | None = None
    max_retries: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ValueError(f"max_retries must be an integer, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not math.isfinite(self.timeout)
            or self.timeout <= 0
        ):
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "provider") -> ProviderSettings:
        """Settings from a mapping (parsed YAML or JSON); unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_SETTING_KEYS))
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(_SETTING_KEYS)}"
            )
        for key in ("api_key", "api_key_env", "base_url"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{where}.{key}: expected a string, got {type(value).__name__}")
        try:
            return cls(
                api_key=data.get("api_key"),
                api_key_env=data.get("api_key_env"),
                base_url=data.get("base_url"),
                timeout=data.get("timeout"),
                max_retries=data.get("max_retries", 2),
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def __repr__(self) -> str:
        return (
            f"ProviderSettings(api_key={'***' if self.api_key else None!r}, "
            f"api_key_env={self.api_key_env!r}, base_url={display_url(self.base_url)!r}, "
            f"timeout={self.timeout!r}, max_retries={self.max_retries!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class ProviderConfig:
    """Settings for every provider. ``ProviderConfig()`` reads the environment when a client is
    made; :meth:`from_env` takes a snapshot now; :meth:`from_mapping` reads YAML-shaped data::

        ProviderConfig.from_mapping({
            "openai": {"base_url": "http://localhost:11434/v1"},   # Ollama
            "anthropic": {"api_key_env": "TEAM_ANTHROPIC_KEY", "max_retries": 4},
        })
    """

    openai: ProviderSettings = field(default_factory=ProviderSettings)
    anthropic: ProviderSettings = field(default_factory=ProviderSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProviderConfig:
        """The keys and endpoints set in ``environ`` (``os.environ`` by default), as of now."""
        env = os.environ if environ is None else environ
        settings = {
            provider: ProviderSettings(api_key=env.get(key) or None, base_url=env.get(url) or None)
            for provider, (key, url) in ENVIRONMENT.items()
        }
        return cls(**settings)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ProviderConfig:
        """A config from ``{"openai": {...}, "anthropic": {...}}`` (see ProviderSettings)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"providers: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(ENVIRONMENT))
        if unknown:
            raise ValueError(
                f"providers: unknown provider(s) {', '.join(map(repr, unknown))}; "
                f"known providers: {', '.join(ENVIRONMENT)}"
            )
        settings = {
            name: ProviderSettings.from_mapping(value or {}, where=f"providers.{name}")
            for name, value in data.items()
        }
        return cls(**settings)

    def for_provider(self, provider: str) -> ProviderSettings:
        """The settings of ``provider`` (``"openai"`` or ``"anthropic"``)."""
        if provider not in ENVIRONMENT:
            raise ValueError(f"unknown provider {provider!r}; known: {', '.join(ENVIRONMENT)}")
        settings: ProviderSettings = getattr(self, provider)
        return settings

    def __repr__(self) -> str:
        return f"ProviderConfig(openai={self.openai!r}, anthropic={self.anthropic!r})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class ResolvedSettings:
    """Settings with the environment applied, as a provider builds its client from them."""

    api_key: str | None
    api_key_env: str
    base_url: str | None
    base_url_env: str
    timeout: float | None
    max_retries: int

    def __repr__(self) -> str:
        return (
            f"ResolvedSettings(api_key={'***' if self.api_key else None!r}, "
            f"api_key_env={self.api_key_env!r}, base_url={display_url(self.base_url)!r})"
        )


def resolve_settings(
    provider: str, settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> ResolvedSettings:
    """Apply the environment to ``settings`` (explicit values win)."""
    env = os.environ if environ is None else environ
    key_env, url_env = ENVIRONMENT[provider]
    key_env = settings.api_key_env or key_env
    return ResolvedSettings(
        api_key=settings.api_key or env.get(key_env) or None,
        api_key_env=key_env,
        base_url=settings.base_url or env.get(url_env) or None,
        base_url_env=url_env,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
    )


def display_url(url: str | None) -> str | None:
    """``url`` without a user name or password, safe to show in messages and logs."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
