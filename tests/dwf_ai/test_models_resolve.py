"""resolve_model's rules, ProviderConfig, and the public API of dwf_ai.models and dwf_ai.testing."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dwf_ai.models
import dwf_ai.testing
from dwf_ai.models import (
    AnthropicModel,
    Model,
    ModelError,
    Moderator,
    OpenAIModel,
    ProviderConfig,
    ProviderSettings,
    resolve_model,
)
from dwf_ai.testing import ScriptedModel


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("gpt-4o-mini", OpenAIModel, "gpt-4o-mini"),
        ("chatgpt-4o-latest", OpenAIModel, "chatgpt-4o-latest"),
        ("o1", OpenAIModel, "o1"),
        ("o3-mini", OpenAIModel, "o3-mini"),
        ("o4-mini", OpenAIModel, "o4-mini"),
        ("claude-sonnet-5", AnthropicModel, "claude-sonnet-5"),
        ("openai:llama3.1:8b", OpenAIModel, "llama3.1:8b"),
        ("anthropic:my-claude-alias", AnthropicModel, "my-claude-alias"),
        ("OpenAI:gpt-4o", OpenAIModel, "gpt-4o"),
    ],
)
def test_the_provider_comes_from_the_name_or_the_prefix(spec: str, kind: type, name: str) -> None:
    model = resolve_model(spec)

    assert isinstance(model, kind) and isinstance(model, Model)
    assert model.name == name


def test_the_provider_key_serves_names_without_a_pattern() -> None:
    model = resolve_model("llama3.1:8b", provider="openai")

    assert isinstance(model, OpenAIModel) and model.name == "llama3.1:8b"
    assert isinstance(model, Moderator)  # OpenAI also offers the moderation endpoint
    assert isinstance(resolve_model("gpt-4o", provider="anthropic"), AnthropicModel)


def test_the_registry_wins_over_every_other_rule() -> None:
    double = ScriptedModel(["hi"], name="gpt-4o")
    registry = {"gpt-4o": double, "scripted:triage": ScriptedModel([])}

    assert resolve_model("gpt-4o", registry=registry) is double
    assert resolve_model("scripted:triage", registry=registry) is registry["scripted:triage"]


def test_an_unknown_model_lists_the_rules_and_suggests_a_registered_name() -> None:
    registry = {"scripted:triage": ScriptedModel([])}

    with pytest.raises(ModelError) as raised:
        resolve_model("scripted:triag", registry=registry)

    message = str(raised.value)
    assert raised.value.code == "unknown_model"
    assert "Did you mean 'scripted:triage'?" in message
    assert "'openai:NAME' or 'anthropic:NAME'" in message
    assert "'claude-*' -> anthropic" in message
    assert "registered: 'scripted:triage'" in message


def test_a_name_without_a_rule_suggests_the_openai_prefix() -> None:
    with pytest.raises(ModelError, match="write 'openai:llama3'"):
        resolve_model("llama3")


@pytest.mark.parametrize(
    ("spec", "provider", "complaint"),
    [
        ("gpt-4o", "mistral", "Unknown provider 'mistral'"),
        ("anthropic:claude-x", "openai", "says provider 'anthropic' but the provider key says"),
        ("openai:", None, "no model name"),
        ("  ", None, "A model name is required"),
    ],
)
def test_contradictory_or_empty_specs_are_clear_errors(
    spec: str, provider: str | None, complaint: str
) -> None:
    with pytest.raises(ModelError, match=complaint):
        resolve_model(spec, provider=provider)


def test_resolving_a_model_needs_neither_a_key_nor_a_request() -> None:
    model = resolve_model("claude-sonnet-5", config=ProviderConfig())

    assert repr(model) == "AnthropicModel('claude-sonnet-5', base_url=None)"


def test_settings_and_config_never_show_a_key() -> None:
    config = ProviderConfig(
        openai=ProviderSettings(api_key="sk-secret-openai-123", base_url="http://u:pw@h:1/v1"),
        anthropic=ProviderSettings(api_key="sk-ant-secret-456"),
    )

    shown = f"{config!r} {config} {config.openai}"

    assert "secret" not in shown and "pw" not in shown
    assert "api_key='***'" in shown and "http://h:1/v1" in shown


def test_config_from_env_reads_the_sdk_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://claude.local")

    config = ProviderConfig.from_env()

    assert config.openai.api_key == "sk-from-env" and config.openai.base_url is None
    assert config.anthropic.base_url == "http://claude.local"
    assert config.anthropic.api_key is None


def test_config_from_a_mapping_checks_its_keys() -> None:
    config = ProviderConfig.from_mapping(
        {"openai": {"base_url": "http://localhost:11434/v1", "timeout": 30, "max_retries": 0}}
    )
    assert config.for_provider("openai").base_url == "http://localhost:11434/v1"
    assert config.openai.max_retries == 0 and config.anthropic == ProviderSettings()

    with pytest.raises(ValueError, match=r"providers.openai: unknown key\(s\) 'retries'"):
        ProviderConfig.from_mapping({"openai": {"retries": 3}})
    with pytest.raises(ValueError, match="unknown provider"):
        ProviderConfig.from_mapping({"mistral": {}})
    with pytest.raises(ValueError, match="max_retries must be 0 or more"):
        ProviderConfig.from_mapping({"anthropic": {"max_retries": -1}})
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        ProviderSettings(timeout=0)


def test_the_models_api_is_pinned() -> None:
    assert set(dwf_ai.models.__all__) == {
        "AnthropicModel", "Message", "Model", "ModelError", "ModelRequest", "ModelResponse",
        "ModelSettings", "ModerationResult", "Moderator", "OpenAIModel", "ProviderConfig",
        "ProviderSettings", "ToolCall", "ToolSpec", "Usage", "resolve_model",
    }  # fmt: skip
    for name in dwf_ai.models.__all__:
        assert getattr(dwf_ai.models, name) is not None


def test_the_testing_api_is_pinned() -> None:
    assert set(dwf_ai.testing.__all__) == {
        "FakeError", "FakeProvider", "FunctionModel", "NetworkBlockedError", "RecordedRequest",
        "ScriptExhaustedError", "ScriptedModel", "ScriptedModerator", "Turn", "block_network",
    }  # fmt: skip
    for name in dwf_ai.testing.__all__:
        assert getattr(dwf_ai.testing, name) is not None


def test_importing_the_models_imports_no_sdk_and_no_server() -> None:
    script = (
        "import sys, dwf_ai.models, dwf_ai.testing\n"
        "dwf_ai.models.resolve_model('gpt-4o'); dwf_ai.models.resolve_model('claude-x')\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    loaded = set(out.stdout.split())

    assert not loaded & {"openai", "anthropic", "starlette", "uvicorn"}
