"""Prompt-injection detection: weighted rules over normalised views of the text.

Each rule is a regular expression over one kind of view (see :mod:`._normalize`) with a weight:
``1.0`` rules (an explicit "ignore your previous instructions", a chat-template token, a request
for the system prompt) flag a text on their own; ``0.6`` and ``0.4`` rules are signals that flag a
text only together (a ``SYSTEM:`` line, "no restrictions", "developer mode"), so that
"operating system: linux", "act as if nobody is watching" or "ignore the previous email" pass.
A rule counts once however often it matches; the score is the sum of the matched rules' weights
and the text is flagged at ``threshold`` (1.0 by default).

The categories name what the attack tries: ``instruction_override``, ``role_hijack``,
``prompt_extraction``, ``fake_system_message``, ``safety_bypass``, ``indirect_injection``,
``data_exfiltration``, ``hidden_text``. Detection is heuristic: it catches the common and the
obfuscated forms (the corpus in ``tests/dwf_ai/corpus`` measures it), not every paraphrase. Pair it
with the moderation check and with least-privilege tools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dwf_ai.guardrails._injection_rules import MEDIUM, RULES
from dwf_ai.guardrails._normalize import views

__all__ = ["DEFAULT_THRESHOLD", "InjectionMatch", "InjectionVerdict", "detect_injection"]

DEFAULT_THRESHOLD = 1.0

_HIDDEN_MIN_CHARS = 8  # emoji tag sequences (subdivision flags) use up to 7
_KIND = {
    "structural": "structural",
    "words": "words",
    "leet": "words",
    "leet_l": "words",
    "reversed": "words",
    "rot13": "words",
    "nospace": "nospace",
    "tags": "words",
    "tags:structural": "structural",
}


@dataclass(frozen=True)
class InjectionMatch:
    """One rule that matched: its ``rule`` id, ``category``, ``weight`` and the ``view`` of the
    text it matched in (``words``, ``leet``, ``base64[0]``, ...)."""

    rule: str
    category: str
    weight: float
    view: str

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "category": self.category, "weight": self.weight,
                "view": self.view}  # fmt: skip


@dataclass(frozen=True)
class InjectionVerdict:
    """The result of :func:`detect_injection`."""

    flagged: bool
    score: float
    matches: tuple[InjectionMatch, ...]

    @property
    def category(self) -> str | None:
        """The category of the heaviest match (the first one among equals)."""
        if not self.matches:
            return None
        return max(self.matches, key=lambda m: m.weight).category


_SPEAKER = re.compile(r"^[ \t]*(human|user|ai|assistant|bot)[ \t]*:", re.MULTILINE)


def _is_transcript(text: str) -> bool:
    """Whether the text plays out a dialogue: lines labelled by a person and by an AI."""
    labels = {m.group(1) for m in _SPEAKER.finditer(text)}
    return bool(labels & {"human", "user"}) and bool(labels & {"ai", "assistant", "bot"})


def _kind(view: str) -> str:
    if view.startswith("base64["):
        return "structural" if view.endswith(":structural") else "words"
    return _KIND.get(view, "words")


def detect_injection(text: str, *, threshold: float = DEFAULT_THRESHOLD) -> InjectionVerdict:
    """Score ``text`` for prompt injection.

    Args:
        text: The text to check (a user message, a retrieved document, a tool result).
        threshold: The score at which the text is flagged; lower is stricter.

    Returns:
        The verdict: ``flagged``, the ``score`` and the matched rules.
    """
    best: dict[str, InjectionMatch] = {}
    spellings = views(text)
    for view, value in spellings:
        kind = _kind(view)
        if kind == "nospace" and view != "nospace":
            continue
        for name, category, weight, rule_kind, pattern in RULES:
            if rule_kind != kind or name in best:
                continue
            if pattern.search(value):
                best[name] = InjectionMatch(name, category, weight, view)
    if "transcript" not in best:
        for view, value in spellings:
            if _kind(view) == "structural" and _is_transcript(value):
                best["transcript"] = InjectionMatch(
                    "transcript", "fake_system_message", MEDIUM, view
                )
                break
    hidden = sum(1 for ch in text if 0xE0020 <= ord(ch) <= 0xE007E)
    if hidden >= _HIDDEN_MIN_CHARS:
        best["hidden_tags"] = InjectionMatch("hidden_tags", "hidden_text", MEDIUM, "raw")
    matches = tuple(sorted(best.values(), key=lambda m: (-m.weight, m.rule)))
    score = round(sum(m.weight for m in matches), 3)
    return InjectionVerdict(flagged=score >= threshold, score=score, matches=matches)
