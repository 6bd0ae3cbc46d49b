"""Which files a search covers, and their text: globs, text extraction and chunking.

Paths and globs are relative to a base directory (the workflow file's folder); ``**`` matches any
depth, a directory means every file under it (hidden ones excepted), an absolute path is used as
is. Text files of any kind are read (UTF-8, else Latin-1 when that reads as text); a file with NUL
bytes or mostly control characters is binary and skipped; PDFs are read with ``pypdf`` when it is
installed (``pip install "dwf[search]"``), otherwise skipped with that hint.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Chunk", "extract_text", "resolve_files", "split_chunks"]

_GLOB_CHARS = frozenset("*?[")
_BINARY_PROBE = 8192
CHUNK_LINES = 40
CHUNK_CHARS = 1500
_LONG_LINE = 4000


@dataclass(frozen=True)
class Chunk:
    """A piece of a file: lines ``start_line..end_line`` (1-based, inclusive) and their text."""

    start_line: int
    end_line: int
    text: str


def resolve_files(patterns: Sequence[str], base_dir: Path) -> tuple[list[Path], list[str]]:
    """The regular files that ``patterns`` name (absolute, de-duplicated, in pattern order and
    sorted within a pattern), and the patterns that matched nothing."""
    found: dict[Path, None] = {}
    unmatched: list[str] = []
    for pattern in patterns:
        matches = list(_expand(pattern, base_dir))
        if not matches:
            unmatched.append(pattern)
        for path in matches:
            found.setdefault(path, None)
    return list(found), unmatched


def _expand(pattern: str, base_dir: Path) -> Iterator[Path]:
    full = os.path.join(base_dir, os.path.expanduser(pattern))
    if _GLOB_CHARS & set(pattern):
        for name in sorted(glob.glob(full, recursive=True)):
            if os.path.isfile(name):
                yield Path(os.path.abspath(name))
        return
    path = Path(os.path.abspath(full))
    if path.is_dir():
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if not name.startswith("."):
                    yield Path(root) / name
    elif path.is_file():
        yield path


def extract_text(path: Path, data: bytes) -> tuple[str | None, str | None]:
    """``(text, None)`` for a readable file, ``(None, reason)`` for one to skip."""
    if path.suffix.lower() == ".pdf" or data[:5] == b"%PDF-":
        return _pdf_text(data)
    if b"\x00" in data[:_BINARY_PROBE]:
        return None, "binary file (contains NUL bytes)"
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    text = data.decode("latin-1")
    probe = text[:_BINARY_PROBE]
    controls = sum(1 for ch in probe if ord(ch) < 32 and ch not in "\t\n\r\f") + sum(
        1 for ch in probe if 0x7F <= ord(ch) < 0xA0
    )
    if probe and controls / len(probe) > 0.05:
        return None, "binary file (not text in UTF-8 or Latin-1)"
    return text, None


def _pdf_text(data: bytes) -> tuple[str | None, str | None]:
    try:
        import io

        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        return None, 'PDF support needs pypdf: pip install "dwf[search]"'
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        return None, f"unreadable PDF ({type(exc).__name__}: {exc})"
    return "\n\f\n".join(pages), None


def split_chunks(text: str) -> list[Chunk]:
    """Split text into chunks of about :data:`CHUNK_LINES` lines or :data:`CHUNK_CHARS`
    characters, preferring to break at a blank line or a Markdown heading."""
    chunks: list[Chunk] = []
    lines = text.splitlines()
    buffer: list[str] = []
    start = 1
    size = 0

    def flush(end: int) -> None:
        # Blank lines at either end are dropped and the line range follows, so that line i of a
        # chunk's text is line start_line + i of the file.
        nonlocal buffer, size
        first = start
        while buffer and not buffer[0].strip():
            buffer.pop(0)
            first += 1
        while buffer and not buffer[-1].strip():
            buffer.pop()
            end -= 1
        if buffer:
            chunks.append(Chunk(first, end, "\n".join(buffer)))
        buffer, size = [], 0

    for number, line in enumerate(lines, start=1):
        if len(line) > _LONG_LINE:  # minified files: one chunk per slice of the line
            flush(number - 1)
            for i in range(0, len(line), CHUNK_CHARS):
                chunks.append(Chunk(number, number, line[i : i + CHUNK_CHARS]))
            start = number + 1
            continue
        boundary = not line.strip() or line.lstrip().startswith("#")
        half_full = len(buffer) >= CHUNK_LINES // 2 or size >= CHUNK_CHARS // 2
        if buffer and boundary and half_full:
            flush(number - 1)
            start = number
        if not buffer:
            start = number
        buffer.append(line)
        size += len(line) + 1
        if len(buffer) >= CHUNK_LINES or size >= CHUNK_CHARS:
            flush(number)
            start = number + 1
    flush(len(lines))
    return chunks
