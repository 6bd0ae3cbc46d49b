"""Personal data detection: candidates found by pattern, confirmed by checksum or structure.

================  ===========================================================================
``email``         ``local@domain.tld`` (the domain needs a dot and a 2-63 letter TLD)
``phone``         E.164 (``+44 20 7946 0958``), NANP with separators (``(555) 123-4567``,
                  ``555-123-4567``, ``1-800-555-0199``) and trunk-prefixed national numbers
                  (``020 7946 0958``, ``06 12 34 56 78``). Bare digit runs are not phones:
                  order numbers, timestamps and amounts are left alone.
``credit_card``   13-19 digits (spaces or dashes allowed) with a known issuer prefix and a valid
                  Luhn check digit
``ssn``           US social security numbers ``AAA-GG-SSSS`` (or spaced) outside the ranges
                  never issued (area 000, 666, 900-999; group 00; serial 0000) and the
                  well-known advertising numbers
``iban``          IBANs of the countries in the registry, right length, valid mod-97 check
``uk_nino``       UK National Insurance numbers (``QQ 12 34 56 C``) with valid prefixes
================  ===========================================================================

Findings carry positions and categories, never the matched text, so they can be journaled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["PII_CATEGORIES", "PIICategory", "PIIFinding", "find_pii", "redact_pii"]

PIICategory = Literal["email", "phone", "credit_card", "ssn", "iban", "uk_nino"]
PII_CATEGORIES: tuple[PIICategory, ...] = (
    "email", "phone", "credit_card", "ssn", "iban", "uk_nino",
)  # fmt: skip
# Which detector wins when two candidates overlap: the more specific, checksummed ones first.
_PRIORITY: tuple[PIICategory, ...] = ("email", "iban", "credit_card", "ssn", "uk_nino", "phone")


@dataclass(frozen=True)
class PIIFinding:
    """One piece of personal data: its ``category`` and where it is (``text[start:end]``)."""

    category: PIICategory
    start: int
    end: int

    def to_dict(self) -> dict[str, object]:
        return {"category": self.category, "start": self.start, "end": self.end}


# ---- email

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)

# ---- payment cards

_CARD = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){12,18}(?![\d-])")
_CARD_PREFIX = re.compile(
    r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9])"
    r"|35(?:2[89]|[3-8]\d)|62|5[06-9]|6\d)"
)


def luhn_valid(digits: str) -> bool:
    """Whether a digit string passes the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    raw = match.group(0)
    separators = {ch for ch in raw if not ch.isdigit()}
    if len(separators) > 1:
        return False  # "4111 1111-1111 1111" is not how anyone writes a card number
    digits = re.sub(r"\D", "", raw)
    if len(set(digits)) == 1:
        return False
    return bool(_CARD_PREFIX.match(digits)) and luhn_valid(digits)


# ---- US social security numbers

_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_ADVERTISING = {"078051120", "219099999", "457555462"}


def _ssn(match: re.Match[str]) -> bool:
    area, group, serial = match.group(1), match.group(3), match.group(4)
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_ADVERTISING


# ---- IBAN

# Country code -> IBAN length (the SWIFT IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])"
)


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` (no spaces) has its country's length and a valid mod-97 check."""
    iban = iban.upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _iban(match: re.Match[str]) -> bool:
    return iban_valid(match.group(0).replace(" ", ""))


# ---- UK National Insurance numbers

_NINO = re.compile(
    r"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])"
    r"(?![A-Za-z0-9])"
)
_NINO_BAD_PREFIXES = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def _nino(match: re.Match[str]) -> bool:
    return match.group(1) not in _NINO_BAD_PREFIXES


# ---- phone numbers

_SEP = r"[ .\-]"
_PHONE_E164 = re.compile(
    rf"(?<![\w+])\+[1-9]\d{{0,2}}(?:{_SEP}?\(\d{{1,4}}\))?(?:{_SEP}?\d{{1,5}}){{1,6}}(?![\w-])"
)
_PHONE_NANP = re.compile(
    rf"(?<![\w+-])(?:1{_SEP})?(?:\(([2-9]\d\d)\) ?|([2-9]\d\d){_SEP})\d{{3}}{_SEP}\d{{4}}(?![\w-])"
)
_PHONE_TRUNK = re.compile(rf"(?<![\w+.-])0\d{{1,4}}(?:{_SEP}\d{{2,6}}){{1,4}}(?![\w-])")
_DATE_LIKE = re.compile(r"^\d{1,4}([./-])\d{1,2}\1\d{1,4}$")


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _e164(match: re.Match[str]) -> bool:
    return 8 <= _digits(match.group(0)) <= 15


def _trunk(match: re.Match[str]) -> bool:
    raw = match.group(0)
    return 9 <= _digits(raw) <= 11 and not _DATE_LIKE.match(raw)


_DETECTORS: list[tuple[PIICategory, re.Pattern[str], object]] = [
    ("email", _EMAIL, None),
    ("iban", _IBAN, _iban),
    ("credit_card", _CARD, _card),
    ("ssn", _SSN, _ssn),
    ("uk_nino", _NINO, _nino),
    ("phone", _PHONE_E164, _e164),
    ("phone", _PHONE_NANP, None),
    ("phone", _PHONE_TRUNK, _trunk),
]


def find_pii(text: str, categories: Iterable[str] | None = None) -> list[PIIFinding]:
    """Find personal data in ``text``.

    Args:
        text: The text to scan.
        categories: Only these categories (default: all of :data:`PII_CATEGORIES`).

    Returns:
        The findings in text order; overlapping candidates resolve to the more specific
        category (an IBAN is not also reported as a phone number).
    """
    wanted = set(PII_CATEGORIES if categories is None else categories)
    taken: list[PIIFinding] = []
    for category in _PRIORITY:
        for name, pattern, confirm in _DETECTORS:
            if name != category:
                continue
            for match in pattern.finditer(text):
                if callable(confirm) and not confirm(match):
                    continue
                start, end = match.span()
                if any(f.start < end and start < f.end for f in taken):
                    continue
                taken.append(PIIFinding(category, start, end))
    return sorted((f for f in taken if f.category in wanted), key=lambda f: (f.start, f.end))


def redact_pii(text: str, findings: Iterable[PIIFinding]) -> str:
    """``text`` with each finding replaced by ``[REDACTED:<category>]``."""
    out: list[str] = []
    position = 0
    for finding in sorted(findings, key=lambda f: f.start):
        if finding.start < position:
            continue
        out.append(text[position : finding.start])
        out.append(f"[REDACTED:{finding.category}]")
        position = finding.end
    out.append(text[position:])
    return "".join(out)
