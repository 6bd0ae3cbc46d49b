"""block_network: real network calls are impossible in tests, loopback still works."""

from __future__ import annotations

import socket

import pytest

from dwf_ai.models import ModelRequest, OpenAIModel, ProviderSettings
from dwf_ai.testing import NetworkBlockedError, block_network


def test_connecting_to_a_public_address_raises() -> None:
    with socket.socket() as sock, pytest.raises(NetworkBlockedError, match=r"203\.0\.113\.7:443"):
        sock.connect(("203.0.113.7", 443))


def test_looking_up_a_public_name_raises() -> None:
    with pytest.raises(NetworkBlockedError, match=r"api\.openai\.com"):
        socket.getaddrinfo("api.openai.com", 443)


def test_loopback_connections_still_work() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            accepted, _ = server.accept()
            accepted.close()


async def test_a_real_sdk_call_to_the_provider_is_blocked_not_retried() -> None:
    model = OpenAIModel("gpt-4o-mini", ProviderSettings(api_key="sk-test", max_retries=2))

    with pytest.raises(NetworkBlockedError):
        await model.respond(ModelRequest("gpt-4o-mini", [{"role": "user", "content": "hi"}]))


def test_blocking_nests_and_allow_hosts_lets_one_host_through() -> None:
    with block_network(allow_hosts=["203.0.113.7"]):
        # a numeric address resolves locally, so this reaches no network either way
        assert socket.getaddrinfo("203.0.113.7", 443)
    with pytest.raises(NetworkBlockedError):  # the outer block is still in force
        socket.getaddrinfo("203.0.113.7", 443)


@pytest.mark.allow_network
def test_a_test_marked_allow_network_is_not_blocked() -> None:
    connect = socket.socket.connect
    with block_network():
        assert socket.socket.connect is not connect
    assert socket.socket.connect is connect
