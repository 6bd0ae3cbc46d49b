"""Guardrails: the ``guardrail`` step and the checks agent steps run on prompts and answers.

* :class:`GuardrailStep` / :class:`GuardrailConfig` — the step type (register it with
  ``registry.register_step(GuardrailStep(moderator=...))``).
* :func:`run_checks` — run a check list on a text; returns a :class:`GuardrailResult`.
* :data:`CheckList` — the pydantic field type of a check list (bare names allowed), for config
  models such as an agent step's ``input_guardrails``; :func:`parse_checks` validates one.
* :func:`detect_injection`, :func:`find_pii`, :func:`redact_pii` — the detectors themselves.
* :class:`Moderator`, :class:`DefaultModerator` — what the moderation check asks.
"""

from __future__ import annotations

from dwf_ai.guardrails.checks import (
    CHECK_TYPES,
    Check,
    CheckList,
    CheckOutcome,
    GuardrailFailure,
    GuardrailResult,
    LengthCheck,
    ModerationCheck,
    PIICheck,
    PromptInjectionCheck,
    RegexCheck,
    parse_checks,
    run_checks,
)
from dwf_ai.guardrails.injection import InjectionMatch, InjectionVerdict, detect_injection
from dwf_ai.guardrails.moderation import (
    DefaultModerator,
    ModerationUnavailable,
    Moderator,
    ModeratorLike,
    default_moderator,
)
from dwf_ai.guardrails.pii import PII_CATEGORIES, PIIFinding, find_pii, redact_pii
from dwf_ai.guardrails.step import (
    FAILURE_VARIABLE,
    GuardrailConfig,
    GuardrailFailed,
    GuardrailStep,
)

__all__ = [
    "CHECK_TYPES",
    "FAILURE_VARIABLE",
    "PII_CATEGORIES",
    "Check",
    "CheckList",
    "CheckOutcome",
    "DefaultModerator",
    "GuardrailConfig",
    "GuardrailFailed",
    "GuardrailFailure",
    "GuardrailResult",
    "GuardrailStep",
    "InjectionMatch",
    "InjectionVerdict",
    "LengthCheck",
    "ModerationCheck",
    "ModerationUnavailable",
    "Moderator",
    "ModeratorLike",
    "PIICheck",
    "PIIFinding",
    "PromptInjectionCheck",
    "RegexCheck",
    "default_moderator",
    "detect_injection",
    "find_pii",
    "parse_checks",
    "redact_pii",
    "run_checks",
]
