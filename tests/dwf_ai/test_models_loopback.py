"""Both SDKs against the FakeProvider served by uvicorn on a real loopback port."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator

import pytest

from dwf_ai.models import Model, ModelError, ModelRequest, ToolSpec
from dwf_ai.testing import FakeError, FakeProvider

LOOKUP = ToolSpec("lookup_order", "Find an order.", {"type": "object", "properties": {}})


@pytest.fixture
def served() -> Iterator[tuple[FakeProvider, str]]:
    fake = FakeProvider(api_key="sk-loopback-key")
    with fake.serve() as url:
        yield fake, url


def _ask(**kwargs: object) -> ModelRequest:
    return ModelRequest("m", [{"role": "user", "content": "hi"}], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [False, True])
async def test_the_openai_sdk_works_over_a_loopback_port(
    served: tuple[FakeProvider, str], stream: bool
) -> None:
    fake, url = served
    fake.script(
        [
            FakeError(429, retry_after=0.01),
            {"tool_calls": [{"name": "lookup_order", "arguments": {"id": 1}}]},
            {"output": {"done": True}},
        ]
    )
    model = fake.openai_model(url=url, api_key="sk-loopback-key", stream=stream)
    try:
        first = await model.respond(_ask(tools=[LOOKUP]))
        second = await model.respond(_ask(output_schema={"type": "object"}))
    finally:
        await model.aclose()

    assert first.tool_calls[0].parsed_arguments() == {"id": 1}
    assert json.loads(second.content or "") == {"done": True}
    assert len(fake.requests) == 3
    assert all(r.api_key == "sk-loopback-key" for r in fake.requests)


@pytest.mark.parametrize("stream", [False, True])
async def test_the_anthropic_sdk_works_over_a_loopback_port(
    served: tuple[FakeProvider, str], stream: bool
) -> None:
    fake, url = served
    fake.script(
        [
            FakeError(500, retry_after=0.01),
            {"content": "Let me check.", "tool_calls": [{"name": "lookup_order", "arguments": {}}]},
            "All good.",
        ]
    )
    model = fake.anthropic_model(url=url, api_key="sk-loopback-key", stream=stream)
    try:
        first = await model.respond(_ask(tools=[LOOKUP]))
        second = await model.respond(_ask())
    finally:
        await model.aclose()

    assert first.content == "Let me check." and first.tool_calls[0].name == "lookup_order"
    assert second.content == "All good."
    assert len(fake.requests) == 3


async def test_a_wrong_key_over_a_loopback_port_is_a_clear_error(
    served: tuple[FakeProvider, str],
) -> None:
    fake, url = served
    model = fake.openai_model(url=url, api_key="sk-not-the-right-one")
    try:
        with pytest.raises(ModelError) as raised:
            await model.respond(_ask())
    finally:
        await model.aclose()

    assert raised.value.code == "authentication"
    assert "sk-not-the-right-one" not in str(raised.value)
    assert len(fake.requests) == 1


async def test_a_server_that_is_not_there_is_a_retryable_connection_error() -> None:
    fake = FakeProvider()
    with fake.serve() as url:
        pass  # the port is closed again
    model = fake.openai_model(url=url, max_retries=0)

    with pytest.raises(ModelError) as raised:
        await model.respond(_ask())

    assert raised.value.code == "connection" and raised.value.retryable
    assert url in str(raised.value)


def test_one_model_serves_one_event_loop_after_another_without_being_closed() -> None:
    """run_sync starts a loop per call: connections must not cross loops, and each loop's
    client is closed when that loop shuts down (warnings are errors in these tests)."""
    fake = FakeProvider(["first", "second", "third"])
    with fake.serve() as url:
        models: list[Model] = [fake.openai_model(url=url), fake.anthropic_model(url=url)]

        async def ask(model: Model) -> str | None:
            return (await model.respond(_ask())).content

        answers = [asyncio.run(ask(models[0])) for _ in range(2)]
        answers.append(asyncio.run(ask(models[1])))
        models.clear()
        gc.collect()

    assert answers == ["first", "second", "third"]
