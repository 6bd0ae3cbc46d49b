"""Text normalisation for injection detection: the views of a text that the rules scan.

Attackers spell instructions so that a plain regex misses them: look-alike letters from other
scripts ("ignore" with a Cyrillic i, o and e), fullwidth or mathematical letters, zero-width
characters inside words, accents, leetspeak (``1gn0r3``), spaced or dotted letters
(``i g n o r e``, ``i.g.n.o.r.e``), invisible Unicode tag characters, base64, ROT13 and reversed
text. :func:`views` turns one text into the few canonical spellings the rules run on.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

__all__ = ["View", "canonical", "views"]

View = tuple[str, str]  # (name, text)

# Look-alike characters mapped to ASCII (a subset of the Unicode TR39 confusables), written as
# escapes so that the source shows which character each entry is.
_CONFUSABLES = {
    # Cyrillic
    "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u0451": "e", "\u0437": "3", "\u0456": "i",
    "\u0457": "i", "\u0458": "j", "\u043a": "k", "\u043c": "m", "\u043d": "h", "\u043e": "o",
    "\u0440": "p", "\u0441": "c", "\u0442": "t", "\u0443": "y", "\u0445": "x", "\u0455": "s",
    "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04bb": "h", "\u04cf": "l", "\u0410": "A",
    "\u0412": "B", "\u0415": "E", "\u041a": "K", "\u041c": "M", "\u041d": "H", "\u041e": "O",
    "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0425": "X", "\u0423": "Y", "\u0405": "S",
    "\u0406": "I", "\u0408": "J", "\u051a": "Q", "\u051c": "W",
    # Greek
    "\u03b1": "a", "\u03b2": "b", "\u03b3": "y", "\u03b5": "e", "\u03b7": "n", "\u03b9": "i",
    "\u03ba": "k", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p", "\u03c4": "t", "\u03c5": "u",
    "\u03c7": "x", "\u03c9": "w", "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z",
    "\u0397": "H", "\u0399": "I", "\u039a": "K", "\u039c": "M", "\u039d": "N", "\u039f": "O",
    "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X",
    # Armenian, small capitals and other Latin look-alikes
    "\u0261": "g", "\u0251": "a", "\u0131": "i", "\u2113": "l", "\u0585": "o", "\u057d": "u",
    "\u0570": "h", "\u0578": "n", "\u0581": "g", "\u1d00": "a", "\u0299": "b", "\u1d04": "c",
    "\u1d05": "d", "\u1d07": "e", "\u0262": "g", "\u029c": "h", "\u026a": "i", "\u1d0a": "j",
    "\u1d0b": "k", "\u029f": "l", "\u1d0d": "m", "\u0274": "n", "\u1d0f": "o", "\u1d18": "p",
    "\u0280": "r", "\ua731": "s", "\u1d1b": "t", "\u1d1c": "u", "\u1d20": "v", "\u1d21": "w",
    "\u028f": "y", "\u1d22": "z",
    # Typographic quotes and dashes
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"',
    "\u201e": '"', "\u2033": '"', "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",
    "\u2014": "-", "\u2015": "-", "\u2212": "-",
}  # fmt: skip
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLES)

_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
         "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"}  # fmt: skip
_LEET_I = str.maketrans(_LEET)
_LEET_L = str.maketrans({**_LEET, "1": "l"})
# A token that mixes letters with leet characters (``1gn0r3``, ``pr3v10u5``, ``r3v34l``).
_LEET_TOKEN = re.compile(r"[a-z0-9@$!|+]+")
_LETTER = re.compile(r"[a-z]")
_HAS_LEET = re.compile(r"[0-9@$!|+]")

# Letters spelled out with one repeated separator: ``i g n o r e``, ``i.g.n.o.r.e``, ``i-g-n``.
_SPACED = re.compile(r"(?<![a-z])([a-z])([ .\-_*·/|+~])(?:[a-z]\2){1,}[a-z](?![a-z])")
_INNER_HYPHEN = re.compile(r"(?<=[a-z]{2})-(?=[a-z]{2})")
_BOUNDARY = re.compile(r"[.!?;:]+")
_NON_WORD = re.compile(r"[^a-z0-9. ]+")
_APOSTROPHE = re.compile(r"(?<=[a-z])'(?=[a-z])")
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_TAG_START, _TAG_END = 0xE0000, 0xE007F
_MAX_DECODED = 8


def canonical(text: str) -> str:
    """The structural view: NFKC, no invisible characters, no accents, look-alike letters mapped
    to Latin, case-folded. Punctuation and line breaks are kept (``[system]``, ``<|im_start|>``)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = text.translate(_CONFUSABLE_TABLE)
    decomposed = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", text).casefold().translate(_CONFUSABLE_TABLE)


def _collapse_spaced(text: str) -> str:
    return _SPACED.sub(lambda m: m.group(0).replace(m.group(2), ""), text)


def _words(structural: str) -> str:
    """Lower-case words separated by single spaces; ``.`` marks sentence and clause ends."""
    text = _collapse_spaced(structural)
    text = _INNER_HYPHEN.sub("", text)
    text = _APOSTROPHE.sub("", text)
    text = _BOUNDARY.sub(" . ", text)
    text = _NON_WORD.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _deleet(words: str, table: dict[int, str]) -> str:
    def fix(match: re.Match[str]) -> str:
        token = match.group(0)
        if _LETTER.search(token) and _HAS_LEET.search(token):
            return token.translate(table)
        return token

    return _LEET_TOKEN.sub(fix, words)


def _hidden_tags(text: str) -> str:
    """The ASCII text smuggled in Unicode tag characters (U+E0020..U+E007E), if any."""
    return "".join(chr(ord(ch) - _TAG_START) for ch in text if 0xE0020 <= ord(ch) <= 0xE007E)


def _decoded_base64(text: str) -> list[str]:
    found: list[str] = []
    for match in _BASE64.finditer(text):
        blob = match.group(0)
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        printable = sum(ch.isprintable() or ch.isspace() for ch in decoded)
        if decoded and printable / len(decoded) > 0.95 and " " in decoded.strip():
            found.append(decoded)
        if len(found) >= _MAX_DECODED:
            break
    return found


def views(text: str) -> list[View]:
    """The spellings of ``text`` that the injection rules scan, as ``(name, text)`` pairs.

    ``structural`` keeps punctuation; ``words`` is words and sentence marks only; ``leet`` and
    ``leet_l`` undo leetspeak (``1`` read as ``i`` or as ``l``); ``nospace`` has letters only
    (``ignoreallpreviousinstructions``); ``reversed`` and ``rot13`` undo those encodings;
    ``tags`` is text hidden in Unicode tag characters; ``base64`` views are decoded blobs.
    """
    structural = canonical(text)
    words = _words(structural)
    out: list[View] = [("structural", structural), ("words", words)]
    if _HAS_LEET.search(words) or _HAS_LEET.search(structural):
        source = _leet_words(structural)
        for name, table in (("leet", _LEET_I), ("leet_l", _LEET_L)):
            value = _deleet(source, table)
            if value != words:
                out.append((name, value))
    out.append(("nospace", re.sub(r"[^a-z]+", "", words)))
    out.append(("reversed", words[::-1]))
    out.append(("rot13", codecs.encode(words, "rot13")))
    hidden = _hidden_tags(text)
    if hidden:
        tag_structural = canonical(hidden)
        out += [("tags:structural", tag_structural), ("tags", _words(tag_structural))]
    for i, decoded in enumerate(_decoded_base64(text)):
        decoded_structural = canonical(decoded)
        out += [
            (f"base64[{i}]:structural", decoded_structural),
            (f"base64[{i}]", _words(decoded_structural)),
        ]
    return out


def _leet_words(structural: str) -> str:
    """Like :func:`_words` but keeps the leet characters that :func:`_words` would drop."""
    text = _collapse_spaced(structural)
    text = _INNER_HYPHEN.sub("", text)
    text = _APOSTROPHE.sub("", text)
    text = re.sub(r"!(?![a-z0-9])|[.?;:]+", " . ", text)
    text = re.sub(r"[^a-z0-9@$!|+. ]+", " ", text)
    return _SPACES.sub(" ", text).strip()
