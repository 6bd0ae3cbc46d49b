"""The moderation check's link to a provider: any object with ``async moderate(text)``.

The ``guardrail`` step and agent guardrails are given a moderator (``GuardrailStep(moderator=...)``,
an :class:`~dwf_ai.models.OpenAIModel`, a :class:`~dwf_ai.testing.ScriptedModerator`); without one
they build the default on first use: OpenAI's moderation endpoint through the ``openai`` SDK,
configured like the OpenAI models (``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` or a
:class:`~dwf_ai.models.ProviderConfig`). Whatever keeps the check from getting an answer (the SDK
not installed, no key, a timeout, an outage, an answer it cannot read) is
:class:`ModerationUnavailable`, and the check fails closed unless the workflow says
``on_unavailable: pass``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from dwf_ai.models.config import ProviderConfig

__all__ = [
    "DEFAULT_MODERATION_MODEL",
    "DefaultModerator",
    "ModerationUnavailable",
    "ModerationVerdict",
    "Moderator",
    "ModeratorLike",
    "default_moderator",
    "moderate",
]

DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


@runtime_checkable
class Moderator(Protocol):
    """Classifies text as harmful or not; the result has ``flagged`` and ``categories``
    (names, or a mapping of name to bool), like :class:`dwf_ai.models.ModerationResult`."""

    async def moderate(self, text: str) -> Any: ...


#: A :class:`Moderator`, or an async (or sync) function ``text -> result``.
ModeratorLike = Moderator | Callable[[str], Any]


class ModerationUnavailable(Exception):
    """The moderation check could not get an answer; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ModerationVerdict:
    """A provider's answer in one shape: ``flagged`` and the flagged ``categories``."""

    flagged: bool
    categories: tuple[str, ...]


def default_moderator(config: ProviderConfig | None = None) -> Moderator:
    """OpenAI's moderation endpoint (``omni-moderation-latest``) through the ``openai`` SDK.

    Raises:
        ModerationUnavailable: The ``openai`` SDK (the ``ai`` extra) is not installed.
    """
    try:
        from dwf_ai.models.openai import OpenAIModel
    except ImportError as exc:
        raise ModerationUnavailable(
            f"the moderation check needs the openai SDK ({exc.name} is missing): "
            'pip install "dwf[ai]"'
        ) from exc
    return OpenAIModel(DEFAULT_MODERATION_MODEL, config, moderation_model=DEFAULT_MODERATION_MODEL)


async def moderate(
    moderator: ModeratorLike,
    text: str,
    *,
    timeout: float,  # noqa: ASYNC109
) -> ModerationVerdict:
    """Ask ``moderator`` about ``text`` within ``timeout`` seconds.

    Raises:
        ModerationUnavailable: The moderator raised, timed out or answered in an unknown shape.
    """
    try:
        async with asyncio.timeout(timeout):
            result = await _call(moderator, text)
    except TimeoutError:
        raise ModerationUnavailable(f"the moderator did not answer within {timeout:g}s") from None
    except ModerationUnavailable:
        raise
    except Exception as exc:  # an outage, a missing key, a bug: all mean "no answer"
        raise ModerationUnavailable(_describe(exc)) from exc
    return _verdict(result)


async def _call(moderator: ModeratorLike, text: str) -> Any:
    method = getattr(moderator, "moderate", None)
    function: Callable[[str], Any] | None = method if callable(method) else None
    if function is None and callable(moderator):
        function = moderator
    if function is None:
        raise ModerationUnavailable(
            f"{type(moderator).__name__} is not a moderator: it needs an async moderate(text)"
        )
    if inspect.iscoroutinefunction(function):
        return await function(text)
    result = await asyncio.to_thread(function, text)
    if inspect.isawaitable(result):
        return await _await(result)
    return result


async def _await(value: Awaitable[Any]) -> Any:
    return await value


def _verdict(result: Any) -> ModerationVerdict:
    if isinstance(result, Mapping):
        flagged, categories = result.get("flagged"), result.get("categories", ())
    else:
        flagged = getattr(result, "flagged", None)
        categories = getattr(result, "categories", ())
    if callable(flagged):  # a `flagged()` method, as some libraries spell it
        flagged = flagged()
    if not isinstance(flagged, bool):
        raise ModerationUnavailable(
            f"the moderator answered {type(result).__name__} without a boolean 'flagged'"
        )
    if isinstance(categories, Mapping):
        names = tuple(str(k) for k, v in categories.items() if v is True)
    elif isinstance(categories, list | tuple | set | frozenset):
        names = tuple(str(c) for c in categories)
    elif categories is None:
        names = ()
    else:
        raise ModerationUnavailable(
            f"the moderator's 'categories' is a {type(categories).__name__}, "
            "not a list of names or a mapping of name to bool"
        )
    return ModerationVerdict(flagged=flagged, categories=names)


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    detail = f"{type(exc).__name__}: {exc}".strip()
    return f"{detail} ({code})" if isinstance(code, str) and code not in str(exc) else detail


class DefaultModerator:
    """The default moderator (:func:`default_moderator`), built on first use, so that a workflow
    without a moderation check never needs the ``openai`` SDK or a key."""

    def __init__(self, config: ProviderConfig | None = None) -> None:
        self._config = config
        self._inner: Moderator | None = None

    async def moderate(self, text: str) -> Any:
        if self._inner is None:
            self._inner = default_moderator(self._config)
        return await self._inner.moderate(text)

    async def aclose(self) -> None:
        """Close the provider's HTTP connections, if it opened any."""
        close = getattr(self._inner, "aclose", None)
        if callable(close):
            await close()
