"""Every dwf_ai test runs with the network blocked (loopback still works); a test that really needs
the network says so with ``@pytest.mark.allow_network``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dwf_ai.testing import block_network

_PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "OPENAI_CUSTOM_HEADERS",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_CUSTOM_HEADERS",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_network: let this test reach the real network")


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("allow_network"):
        yield
        return
    with block_network():
        yield


@pytest.fixture(autouse=True)
def _no_provider_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys and endpoints of the machine running the tests must not leak into them."""
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
