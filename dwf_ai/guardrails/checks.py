"""The guardrail checks: their YAML models and :func:`run_checks`, shared by the ``guardrail``
step and the input and output guardrails of agent steps.

A check list is written as in the original: mappings with a ``type``, or a bare type name::

    checks:
      - prompt_injection
      - type: pii
        redact: true            # mask instead of failing
      - type: moderation
        on_unavailable: pass    # default: fail closed when moderation cannot run
      - type: regex
        pattern: "(?i)\\bpassword\\b"
        block_on_match: true
      - type: length
        max: 4000

Checks run in list order and stop at the first failure (a moderation call is not made for a text
that already failed). A ``pii`` check with ``redact: true`` passes and masks what it found; the
checks after it, and the caller, see the masked text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dwf import expr
from dwf.errors import ExpressionError
from dwf.extensions import did_you_mean
from dwf_ai.guardrails.injection import DEFAULT_THRESHOLD, detect_injection
from dwf_ai.guardrails.moderation import (
    DefaultModerator,
    ModerationUnavailable,
    ModeratorLike,
    moderate,
)
from dwf_ai.guardrails.pii import PIICategory, find_pii, redact_pii

__all__ = [
    "CHECK_TYPES",
    "Check",
    "CheckList",
    "CheckOutcome",
    "GuardrailFailure",
    "GuardrailResult",
    "LengthCheck",
    "ModerationCheck",
    "PIICheck",
    "PromptInjectionCheck",
    "RegexCheck",
    "parse_checks",
    "run_checks",
]

logger = logging.getLogger("dwf.ai")

#: Texts longer than this are scanned in a worker thread, so the event loop keeps running.
_THREAD_CHARS = 20_000


class _CheckModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class PromptInjectionCheck(_CheckModel):
    """Fails on text that tries to override an AI's instructions (see :mod:`.injection`)."""

    type: Literal["prompt_injection"]
    #: The detector's score at which the text fails; lower is stricter.
    threshold: float = Field(default=DEFAULT_THRESHOLD, gt=0)


class PIICheck(_CheckModel):
    """Fails on personal data, or masks it with ``redact: true`` (see :mod:`.pii`)."""

    type: Literal["pii"]
    #: Only these categories (default: all).
    categories: list[PIICategory] | None = Field(default=None, min_length=1)
    redact: bool = False


class ModerationCheck(_CheckModel):
    """Fails on text the provider's moderation endpoint flags."""

    type: Literal["moderation"]
    #: Only these flagged categories fail the check (default: any flag).
    categories: list[str] | None = Field(default=None, min_length=1)
    #: What to do when moderation cannot run (no key, outage, timeout).
    on_unavailable: Literal["fail", "pass"] = "fail"
    timeout: float = Field(default=30.0, gt=0)


class RegexCheck(_CheckModel):
    """Fails when ``pattern`` matches (or, with ``block_on_match: false``, when it does not)."""

    type: Literal["regex"]
    pattern: str = Field(min_length=1)
    block_on_match: bool = True
    #: The failure reason to report instead of the default one.
    reason: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            expr.search_regex(pattern, "")
        except ExpressionError as exc:
            raise ValueError(exc.message) from None
        return pattern


class LengthCheck(_CheckModel):
    """Fails when the text has fewer than ``min`` or more than ``max`` characters."""

    type: Literal["length"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> LengthCheck:
        if self.min is None and self.max is None:
            raise ValueError("a length check needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        return self


_MODELS: dict[str, type[_CheckModel]] = {
    "prompt_injection": PromptInjectionCheck,
    "pii": PIICheck,
    "moderation": ModerationCheck,
    "regex": RegexCheck,
    "length": LengthCheck,
}
CHECK_TYPES: tuple[str, ...] = tuple(_MODELS)


def _check_item(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate one check: a bare name becomes ``{type: name}``, and errors name the check's own
    options (not pydantic's tagged-union path), with a suggestion for a misspelt type or key."""
    if isinstance(value, _CheckModel):
        return value
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping):
        return handler(value)  # pydantic explains "should be a mapping"
    kind = value.get("type")
    if kind is None:
        raise PydanticCustomError(
            "check_type_missing",
            "a check needs a 'type' ({known})",
            {"known": ", ".join(CHECK_TYPES)},
        )
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        hint = did_you_mean(str(kind), CHECK_TYPES)
        raise PydanticCustomError(
            "check_type_unknown",
            "unknown check type '{kind}'{hint}; known types: {known}",
            {"kind": str(kind), "hint": hint, "known": ", ".join(CHECK_TYPES)},
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        detail = "; ".join(_explain(kind, model, value, e) for e in exc.errors(include_url=False))
        raise PydanticCustomError("check_invalid", "{detail}", {"detail": detail}) from None


def _explain(kind: str, model: type[_CheckModel], data: Mapping[str, Any], err: Any) -> str:
    loc = [str(p) for p in err["loc"]]
    where = ".".join(loc)
    options = [name for name in model.model_fields if name != "type"]
    if err["type"] == "extra_forbidden":
        hint = did_you_mean(where, options)
        return f"the {kind} check has no option '{where}'{hint}; its options: {', '.join(options)}"
    if err["type"] == "missing":
        return f"the {kind} check needs '{where}'"
    message = str(err["msg"]).removeprefix("Value error, ")
    got: Any = data
    for part in err["loc"]:
        got = got[part] if isinstance(got, Mapping | list) and _has(got, part) else None
    prefix = f"the {kind} check's '{where}': " if where else f"the {kind} check: "
    suffix = f" (got {got!r})" if where and not isinstance(got, Mapping | list) else ""
    return f"{prefix}{message[:1].lower()}{message[1:]}{suffix}"


def _has(container: Mapping[str, Any] | list[Any], part: Any) -> bool:
    if isinstance(container, Mapping):
        return part in container
    return isinstance(part, int) and 0 <= part < len(container)


Check = Annotated[
    PromptInjectionCheck | PIICheck | ModerationCheck | RegexCheck | LengthCheck,
    Field(discriminator="type"),
]
#: A pydantic field type for a list of checks (bare names allowed), for config models such as
#: an agent step's ``input_guardrails``.
CheckList = list[Annotated[Check, WrapValidator(_check_item)]]
_CHECK_LIST: TypeAdapter[list[Any]] = TypeAdapter(CheckList)


def parse_checks(value: Any) -> list[Check]:
    """Validate a check list from YAML or JSON (raises pydantic's ``ValidationError``)."""
    return list(_CHECK_LIST.validate_python(value))


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class GuardrailFailure:
    """Why a guardrail failed: the ``check`` type, a ``category`` (``instruction_override``,
    ``email``, ``harassment``, ``unavailable``, ``pattern``, ``too_long``, ...), a ``reason`` for
    people, the check's ``index`` in its list and check-specific ``details``."""

    check: str
    category: str | None
    reason: str
    index: int
    details: Mapping[str, Any] = field(default_factory=dict)
    stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``$_guardrail_failure`` value: ``check``, ``category``, ``reason``, ``index``,
        ``check_type`` (the original's key, same as ``check``), ``stage`` when given, and the
        details."""
        out: dict[str, Any] = {
            "check": self.check,
            "check_type": self.check,
            "category": self.category,
            "reason": self.reason,
            "index": self.index,
        }
        if self.stage is not None:
            out["stage"] = self.stage
        out.update(self.details)
        return out


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found (for the audit entry). Matched text is never included."""

    check: str
    index: int
    passed: bool
    category: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "index": self.index, "passed": self.passed}
        if self.category is not None:
            out["category"] = self.category
        if self.reason is not None:
            out["reason"] = self.reason
        out.update(self.details)
        return out


@dataclass(frozen=True)
class GuardrailResult:
    """The result of :func:`run_checks`: ``passed``, the ``text`` after redaction, the first
    ``failure`` and each check's ``outcomes`` (the checks after a failure do not run)."""

    passed: bool
    text: str
    redacted: bool
    failure: GuardrailFailure | None
    outcomes: tuple[CheckOutcome, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe audit record (without the text)."""
        return {
            "passed": self.passed,
            "redacted": self.redacted,
            "failure": self.failure.to_dict() if self.failure is not None else None,
            "checks": [o.to_dict() for o in self.outcomes],
        }


# --------------------------------------------------------------------------------------------
# Running


async def run_checks(
    checks: Iterable[Check | Mapping[str, Any] | str],
    text: str,
    *,
    moderator: ModeratorLike | None = None,
    stage: str | None = None,
) -> GuardrailResult:
    """Run ``checks`` on ``text`` in order, stopping at the first failure.

    Args:
        checks: Check models, or their YAML form (mappings or bare names), validated here.
        text: The text to check.
        moderator: What the ``moderation`` check asks (an object with ``async moderate(text)``
            or a function); ``None`` builds the default OpenAI moderator when a moderation
            check runs.
        stage: A label copied into the failure (``"input"``, ``"output"``) for agent steps.

    Returns:
        The result; it never raises for a failing check. A moderation check that cannot run
        fails (category ``unavailable``) unless it says ``on_unavailable: pass``.
    """
    items = list(checks)
    parsed: list[Any] = items
    if not all(isinstance(c, _CheckModel) for c in items):
        parsed = parse_checks([c.model_dump() if isinstance(c, _CheckModel) else c for c in items])
    outcomes: list[CheckOutcome] = []
    redacted = False
    for index, check in enumerate(parsed):
        outcome, new_text = await _run_one(check, index, text, moderator)
        outcomes.append(outcome)
        if new_text is not None and new_text != text:
            text, redacted = new_text, True
        if not outcome.passed:
            failure = GuardrailFailure(
                check=outcome.check,
                category=outcome.category,
                reason=outcome.reason or f"{outcome.check} check failed",
                index=index,
                details=outcome.details,
                stage=stage,
            )
            return GuardrailResult(False, text, redacted, failure, tuple(outcomes))
    return GuardrailResult(True, text, redacted, None, tuple(outcomes))


async def _off_loop(function: Any, *args: Any, text: str, **kwargs: Any) -> Any:
    if len(text) > _THREAD_CHARS:
        return await asyncio.to_thread(function, *args, **kwargs)
    return function(*args, **kwargs)


async def _run_one(
    check: Any, index: int, text: str, moderator: ModeratorLike | None
) -> tuple[CheckOutcome, str | None]:
    if isinstance(check, PromptInjectionCheck):
        verdict = await _off_loop(detect_injection, text, threshold=check.threshold, text=text)
        details = {"score": verdict.score, "rules": [m.rule for m in verdict.matches]}
        if verdict.flagged:
            reason = f"Potential prompt injection detected ({verdict.category})"
            return CheckOutcome(check.type, index, False, verdict.category, reason, details), None
        return CheckOutcome(check.type, index, True, details=details), None
    if isinstance(check, PIICheck):
        findings = await _off_loop(find_pii, text, check.categories, text=text)
        names = sorted({f.category for f in findings}, key=[f.category for f in findings].index)
        details = {"categories": names, "findings": [f.to_dict() for f in findings]}
        if not findings:
            return CheckOutcome(check.type, index, True, details=details), None
        if check.redact:
            reason = f"PII redacted: {', '.join(names)}"
            outcome = CheckOutcome(check.type, index, True, names[0], reason, details)
            return outcome, redact_pii(text, findings)
        reason = f"PII detected: {', '.join(names)}"
        return CheckOutcome(check.type, index, False, names[0], reason, details), None
    if isinstance(check, ModerationCheck):
        return await _moderation(check, index, text, moderator), None
    if isinstance(check, RegexCheck):
        return _regex(check, index, text), None
    if isinstance(check, LengthCheck):
        return _length(check, index, text), None
    raise TypeError(f"not a guardrail check: {check!r}")  # pragma: no cover


async def _moderation(
    check: ModerationCheck, index: int, text: str, moderator: ModeratorLike | None
) -> CheckOutcome:
    try:
        if moderator is None:
            moderator = DefaultModerator()
        verdict = await moderate(moderator, text, timeout=check.timeout)
    except ModerationUnavailable as exc:
        details: dict[str, Any] = {"unavailable": True}
        if check.on_unavailable == "pass":
            logger.warning(
                "moderation unavailable, passing as the workflow allows (on_unavailable: pass): %s",
                exc.reason,
            )
            reason = f"Moderation unavailable, passed (on_unavailable: pass): {exc.reason}"
            return CheckOutcome(check.type, index, True, "unavailable", reason, details)
        reason = (
            f"Moderation unavailable: {exc.reason}. The check fails closed; set "
            "'on_unavailable: pass' on it to let content through when moderation cannot run"
        )
        return CheckOutcome(check.type, index, False, "unavailable", reason, details)
    flagged = list(verdict.categories)
    if check.categories is not None:
        wanted = set(check.categories)
        flagged = [c for c in flagged if c in wanted]
        failed = bool(flagged)
    else:
        failed = verdict.flagged
    details = {"flagged": verdict.flagged, "categories": list(verdict.categories)}
    if not failed:
        return CheckOutcome(check.type, index, True, details=details)
    category = flagged[0] if flagged else None
    named = f": {', '.join(flagged)}" if flagged else ""
    return CheckOutcome(
        check.type, index, False, category, f"Content flagged by moderation{named}", details
    )


def _regex(check: RegexCheck, index: int, text: str) -> CheckOutcome:
    details = {"pattern": check.pattern, "block_on_match": check.block_on_match}
    try:
        matched = expr.search_regex(check.pattern, text)
    except ExpressionError as exc:  # a pathological pattern: no verdict, so fail closed
        return CheckOutcome(check.type, index, False, "error", exc.message, details)
    if matched and check.block_on_match:
        reason = check.reason or "Content matched pattern"
        return CheckOutcome(check.type, index, False, "match", reason, details)
    if not matched and not check.block_on_match:
        reason = check.reason or "Content did not match pattern"
        return CheckOutcome(check.type, index, False, "no_match", reason, details)
    return CheckOutcome(check.type, index, True, details=details)


def _length(check: LengthCheck, index: int, text: str) -> CheckOutcome:
    size = len(text)
    details = {"length": size, "min": check.min, "max": check.max}
    if check.max is not None and size > check.max:
        reason = f"Content exceeds max length ({size} > {check.max})"
        return CheckOutcome(check.type, index, False, "too_long", reason, details)
    if check.min is not None and size < check.min:
        reason = f"Content below min length ({size} < {check.min})"
        return CheckOutcome(check.type, index, False, "too_short", reason, details)
    return CheckOutcome(check.type, index, True, details=details)
