"""PII detection: categories, checksums, invalid ranges, redaction, and the corpus figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dwf_ai.guardrails import find_pii, redact_pii
from dwf_ai.guardrails.pii import iban_valid, luhn_valid

CORPUS = Path(__file__).parent / "corpus"


def read_lines(name: str) -> list[str]:
    return (CORPUS / name).read_text(encoding="utf-8").splitlines()


def categories(text: str) -> list[str]:
    return [f.category for f in find_pii(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice@example.com", ["email"]),
        ("555-123-4567", ["phone"]),  # the original's test value
        ("+1 (212) 555-0198", ["phone"]),
        ("+44 20 7946 0958", ["phone"]),
        ("020 7946 0958", ["phone"]),
        ("06 12 34 56 78", ["phone"]),
        ("4111 1111 1111 1111", ["credit_card"]),
        ("4111111111111111", ["credit_card"]),  # the original's 16-digit form
        ("3782 822463 10005", ["credit_card"]),
        ("123-45-6789", ["ssn"]),
        ("DE89 3704 0044 0532 0130 00", ["iban"]),
        ("GB82WEST12345698765432", ["iban"]),
        ("AB123456C", ["uk_nino"]),
    ],
)
def test_each_category_is_found_and_named(text: str, expected: list[str]) -> None:
    assert categories(f"see {text} please") == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890",  # the original's phone pattern matched any 10 digits
        "timestamp 1699999999",
        "4111 1111 1111 1112",  # Luhn fails
        "1234 5678 9012 3456",  # Luhn fails
        "000-12-3456",
        "666-12-3456",
        "912-12-3456",
        "123-00-4567",
        "123-45-0000",
        "078-05-1120",  # the Woolworth wallet card
        "GB82 WEST 1234 5698 7654 33",  # mod-97 fails
        "DE89 3704 0044 0532 0130",  # too short for DE
        "on 2024-01-10 at 10:00",
        "01.02.2024",
        "192.168.100.200",
        "a@b.c",
        "ISBN 978-3-16-148410-0",
        "tracking 1Z999AA10123456784",
    ],
)
def test_look_alikes_are_not_pii(text: str) -> None:
    assert categories(text) == []


def test_checksums() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert iban_valid("NL91ABNA0417164300") and not iban_valid("NL91ABNA0417164301")


def test_overlaps_resolve_to_the_specific_category_and_filters_apply() -> None:
    text = "IBAN DE89370400440532013000, mail bob@example.com, call 555-123-4567"
    assert categories(text) == ["iban", "email", "phone"]
    assert [f.category for f in find_pii(text, ["phone"])] == ["phone"]


def test_redaction_masks_each_finding_by_category() -> None:
    text = "bob@example.com / 123-45-6789"
    assert redact_pii(text, find_pii(text)) == "[REDACTED:email] / [REDACTED:ssn]"


def test_corpus_recall_and_false_positives_beat_the_original() -> None:
    positive = [json.loads(line) for line in read_lines("pii_positive.jsonl")]
    negative = [json.loads(line) for line in read_lines("pii_negative.jsonl")]
    original = [
        r"\b\d{3}-\d{2}-\d{4}\b", r"\b\d{16}\b", r"\b\d{4}[\s-]?\d{4}[\s-]?\d{4}[\s-]?\d{4}\b",
        r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b", r"\b\d{3}[-.]?\d{3}[-.]?\d{4}\b",
    ]  # fmt: skip

    def naive(text: str) -> bool:
        return any(re.search(p, text) for p in original)

    recall = sum(p["category"] in categories(p["text"]) for p in positive) / len(positive)
    false_positives = sum(bool(find_pii(n["text"])) for n in negative)
    assert recall == 1.0
    assert false_positives <= 1  # "Part number 0123-4567-89" reads as a national phone number
    assert sum(naive(n["text"]) for n in negative) >= 5 * false_positives
