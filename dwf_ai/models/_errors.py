"""Provider failures as :class:`ModelError`: the provider's own message, a stable ``code``, and
whether a later retry could help. Shared by the providers so both read the same.

The SDKs have already retried what is worth retrying in-process (429, 408, 409, 5xx, dropped
connections) when one of these errors is built, so ``retryable`` is advice for the durable layer
(the step's retry policy), not a request to loop again right now.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Iterable, Mapping

from dwf_ai.models.base import ModelError

# The longest Retry-After the SDKs wait in-process. openai 3.x refuses to retry past this
# (MAX_RETRY_AFTER_DELAY); anthropic 2.x has no limit, so dwf applies the same one there.
MAX_RETRY_AFTER = 120.0

_KEY_LIKE = re.compile(r"\b(sk-(?:ant-)?[A-Za-z0-9_\-]{6,})")
_CONTEXT_HINTS = (
    "context_length_exceeded",
    "maximum context length",
    "prompt is too long",
    "context window",
    "too many tokens",
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret, and anything shaped like an API key, masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_LIKE.sub(lambda m: m.group(1)[:3] + "***", text)


def missing_sdk(package: str) -> ModelError:
    return ModelError(
        f"The {package!r} package is not installed, and dwf needs it to call this provider. "
        'Install the AI extra: pip install "dwf[ai]"',
        code="missing_sdk",
    )


def missing_key(label: str, provider: str, env_var: str, model: str) -> ModelError:
    return ModelError(
        f"No API key for {label} (model {model!r}): set the {env_var} environment variable, "
        f"or api_key / api_key_env in the {provider!r} provider settings.",
        code="missing_api_key",
    )


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for (``retry-after-ms``, ``retry-after`` seconds or date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        return seconds if math.isfinite(seconds) else None
    value = lowered.get("retry-after")
    if value:
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:
            return float(email.utils.mktime_tz(parsed) - time.time())
    return None


def is_context_length(code: str | None, message: str) -> bool:
    text = f"{code or ''} {message}".lower()
    return any(hint in text for hint in _CONTEXT_HINTS)


def status_error(
    *,
    label: str,
    provider: str,
    model: str,
    status: int,
    message: str,
    provider_code: str | None,
    env_var: str,
    base_url_env: str,
    request_id: str | None,
    retry_after: float | None,
    max_retries: int,
    secrets: Iterable[str | None],
) -> ModelError:
    """A :class:`ModelError` for an HTTP error status from ``label``."""
    said = redact(message.strip() or f"HTTP {status}", secrets)
    where = f"{label} (model {model!r}, HTTP {status}"
    where += f", request id {request_id})" if request_id else ")"
    if status == 401:
        return ModelError(
            f"{where} rejected the API key: {said}. Check {env_var} "
            f"(or api_key / api_key_env in the {provider!r} provider settings).",
            status=status,
            code="authentication",
        )
    if status == 403:
        return ModelError(
            f"{where} refused access: {said}. The key in {env_var} may not be allowed to use "
            "this model.",
            status=status,
            code="permission_denied",
        )
    if status == 404:
        return ModelError(
            f"{where} does not know this model or endpoint: {said}. Check the model name, and "
            f"the base URL ({base_url_env}) for a compatible server.",
            status=status,
            code="model_not_found",
        )
    if status in (400, 413) and is_context_length(provider_code, said):
        return ModelError(
            f"{where}: the conversation is too long for the model: {said}. Shorten the "
            "conversation or the tool results, or use a model with a larger context window.",
            status=status,
            code="context_length_exceeded",
        )
    retryable = status in (408, 409, 429) or status >= 500
    if retryable:
        if retry_after is not None and retry_after > MAX_RETRY_AFTER:
            waited = (
                f"it asked to wait {retry_after:.0f} s, longer than the {MAX_RETRY_AFTER:.0f} s "
                "dwf waits in-process, so the step should be retried later"
            )
        else:
            waited = f"after {max_retries} retr{'y' if max_retries == 1 else 'ies'}"
        kind = "rate_limited" if status == 429 else "server_error"
        return ModelError(
            f"{where} failed: {said} ({waited}).", status=status, retryable=True, code=kind
        )
    return ModelError(f"{where} refused the request: {said}", status=status, code="bad_request")


def connection_error(
    *, label: str, model: str, base_url: str | None, base_url_env: str, timed_out: bool
) -> ModelError:
    what = "timed out" if timed_out else "could not connect"
    target = base_url or "its default endpoint"
    return ModelError(
        f"{label} (model {model!r}) {what} at {target} after the SDK's retries. Check the "
        f"network, the base URL ({base_url_env}) and that the server is running.",
        retryable=True,
        code="timeout" if timed_out else "connection",
    )
