"""Reading store URLs: passwords kept out of messages, dwf's options split from the driver's.

A server store's URL carries two kinds of query options: dwf's own (``?schema=``, ``?ttl=``, ...),
which the store reads, and the driver's (libpq's, redis-py's), which go on to the driver.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit, urlunsplit

from dwf.errors import ConfigurationError

__all__ = [
    "bad_option",
    "join_query",
    "positive_seconds",
    "redact",
    "set_default",
    "split_query",
    "whole_number",
]

Query = list[tuple[str, str]]


def redact(url: str) -> str:
    """The URL with any password replaced, fit for messages and logs."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def split_query(url: str, ours: Collection[str]) -> tuple[SplitResult, dict[str, str], Query]:
    """The URL's parts, its options named in ``ours``, and its other options in order."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {name: value for name, value in query if name in ours}
    rest = [(name, value) for name, value in query if name not in ours]
    return parts, options, rest


def set_default(query: Query, name: str, value: str) -> None:
    """Append the option ``name=value`` unless the query has ``name`` already."""
    if not any(given == name for given, _ in query):
        query.append((name, value))


def join_query(parts: SplitResult, query: Query) -> str:
    """The URL of ``parts`` with ``query`` as its options."""
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def bad_option(name: str, raw: str, shown: str, rule: str) -> ConfigurationError:
    """For the option ``name`` of the (redacted) URL ``shown`` whose value breaks ``rule``."""
    return ConfigurationError(f"{name} in {shown!r} must be {rule}, got {raw!r}", url=shown)


def whole_number(options: Mapping[str, str], name: str, default: int, shown: str) -> int:
    """The option ``name`` as a whole number >= 1, else ``default`` when it is absent.

    Raises:
        ConfigurationError: The value is not a whole number >= 1.
    """
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise bad_option(name, raw, shown, "a whole number >= 1")
    return value


def positive_seconds(options: Mapping[str, str], name: str, default: float, shown: str) -> float:
    """The option ``name`` as a number of seconds > 0, else ``default`` when it is absent.

    Raises:
        ConfigurationError: The value is not a number > 0.
    """
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise bad_option(name, raw, shown, "a number of seconds > 0")
    return value
