"""The default search backend: a SQLite FTS5 full-text index with BM25 ranking.

The index lives beside the dwf store (``<data dir>/dwf-search.db``; ``$DWF_SEARCH_INDEX`` or an
explicit path overrides it) and is updated incrementally: a file is re-read only when its size or
modification time changed, and re-indexed only when its SHA-256 changed. Files are split into
chunks of about 40 lines (:mod:`.files`); a hit is a chunk, with its line range. Words are stemmed
(Porter) and accents folded, so "configuring" finds "configuration".

Scores are FTS5's BM25 (higher is better), computed over everything in the index; results are
ordered by score, then path, then line, so the same index answers the same query the same way.
Several processes may share one index file (WAL mode, busy timeout).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import stat
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from dwf_ai.search.files import extract_text, split_chunks

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "IndexedHit",
    "SearchIndex",
    "Skipped",
    "default_index_path",
    "query_terms",
]

DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
SCHEMA_VERSION = 2
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_MAX_TERMS = 32
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "my",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "you",
        "your",
    }
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL, skipped TEXT
);
CREATE TABLE IF NOT EXISTS chunk_meta (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL, tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_meta_path ON chunk_meta (path);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(text, tokenize = {tokenizer});
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms USING fts5vocab(chunks, instance);
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query USING fts5(text, tokenize = {tokenizer});
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms USING fts5vocab(temp, query, row);
""".replace("{tokenizer}", "'porter unicode61 remove_diacritics 2'")
_K1, _B = 1.2, 0.75  # the usual BM25 parameters
_WORD = re.compile(r"[^\W_]+")


def default_index_path() -> Path:
    """``$DWF_SEARCH_INDEX``, else ``dwf-search.db`` in the folder of the SQLite store
    (``$DWF_STORE`` when it is a SQLite file, else dwf's default data directory)."""
    explicit = os.environ.get("DWF_SEARCH_INDEX")
    if explicit:
        return Path(explicit).expanduser()
    from dwf.storage import default_store_url

    url = os.environ.get("DWF_STORE") or default_store_url()
    store_file = _sqlite_file(url) or _sqlite_file(default_store_url())
    assert store_file is not None  # the default store is always a SQLite file
    return store_file.parent / "dwf-search.db"


def _sqlite_file(url: str) -> Path | None:
    from urllib.parse import unquote

    if url.lower().startswith("sqlite:///"):
        path = unquote(url[len("sqlite:///") :].partition("?")[0])
    elif "://" not in url and url.partition("?")[0].lower().endswith(
        (".db", ".sqlite", ".sqlite3")
    ):
        path = url.partition("?")[0]
    else:
        return None
    return None if path in ("", ":memory:") else Path(os.path.abspath(path))


def query_terms(query: str) -> list[str]:
    """The words of a query, lower-cased and de-duplicated; stop words are dropped unless the
    query has nothing else."""
    words = list(dict.fromkeys(re.findall(r"\w+", query.casefold())))
    content = [w for w in words if w not in _STOPWORDS]
    return (content or words)[:_MAX_TERMS]


@dataclass(frozen=True)
class Skipped:
    """A file the search did not read, and why (binary, too large, unreadable PDF, ...)."""

    path: Path
    reason: str


@dataclass(frozen=True)
class IndexedHit:
    path: Path
    score: float
    start_line: int
    end_line: int
    text: str


class SearchIndex:
    """A full-text index of files in one SQLite file. Methods are synchronous and open their own
    connection; the async API in :mod:`dwf_ai.search` runs them in a worker thread.

    Args:
        path: The index file (created with its folder on first use); default
            :func:`default_index_path`.
        max_file_bytes: Larger files are skipped and reported.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self._path = Path(path).expanduser() if path is not None else None
        self.max_file_bytes = max_file_bytes

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = default_index_path()
        return self._path

    def __repr__(self) -> str:
        return f"SearchIndex({str(self._path) if self._path else '<default>'!r})"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise RuntimeError(
                f"the search index {self.path} has schema {row[0]}, this dwf uses "
                f"{SCHEMA_VERSION}; delete the file to rebuild it"
            )
        return conn

    # -- updating

    def refresh(self, paths: Sequence[Path]) -> list[Skipped]:
        """Bring the index up to date for ``paths``; returns the files that were skipped."""
        skipped: list[Skipped] = []
        with closing(self._connect()) as conn:
            for path in paths:
                reason = self._refresh_one(conn, path)
                if reason is not None:
                    skipped.append(Skipped(path, reason))
        return skipped

    def _refresh_one(self, conn: sqlite3.Connection, path: Path) -> str | None:
        key = str(path)
        try:
            info = os.stat(path)
        except OSError as exc:
            return f"cannot read: {exc.strerror or exc}"
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > self.max_file_bytes:
            return (
                f"larger than the {_megabytes(self.max_file_bytes)} limit "
                f"({_megabytes(info.st_size)})"
            )
        row = conn.execute(
            "SELECT size, mtime_ns, sha256, skipped FROM files WHERE path = ?", (key,)
        ).fetchone()
        if row is not None and row[0] == info.st_size and row[1] == info.st_mtime_ns:
            return _reason(row[3])  # unchanged
        try:
            with open(path, "rb") as handle:
                data = handle.read(self.max_file_bytes + 1)
        except OSError as exc:
            return f"cannot read: {exc.strerror or exc}"
        if len(data) > self.max_file_bytes:  # it grew since stat()
            return f"larger than the {_megabytes(self.max_file_bytes)} limit"
        digest = hashlib.sha256(data).hexdigest()
        if row is not None and row[2] == digest:
            conn.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?",
                (info.st_size, info.st_mtime_ns, key),
            )
            return _reason(row[3])
        text, reason = extract_text(path, data)
        chunks = split_chunks(text) if text is not None else []
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._forget(conn, key)
            for chunk in chunks:
                cursor = conn.execute(
                    "INSERT INTO chunk_meta (path, start_line, end_line, tokens) "
                    "VALUES (?, ?, ?, ?)",
                    (key, chunk.start_line, chunk.end_line, len(_WORD.findall(chunk.text))),
                )
                conn.execute(
                    "INSERT INTO chunks (rowid, text) VALUES (?, ?)", (cursor.lastrowid, chunk.text)
                )
            conn.execute(
                "INSERT INTO files (path, size, mtime_ns, sha256, skipped) VALUES (?, ?, ?, ?, ?)",
                (key, info.st_size, info.st_mtime_ns, digest, reason),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return reason

    @staticmethod
    def _forget(conn: sqlite3.Connection, key: str) -> None:
        conn.execute(
            "DELETE FROM chunks WHERE rowid IN (SELECT id FROM chunk_meta WHERE path = ?)", (key,)
        )
        conn.execute("DELETE FROM chunk_meta WHERE path = ?", (key,))
        conn.execute("DELETE FROM files WHERE path = ?", (key,))

    def prune(self) -> int:
        """Drop the entries of files that no longer exist; returns how many."""
        with closing(self._connect()) as conn:
            gone = [p for (p,) in conn.execute("SELECT path FROM files") if not os.path.exists(p)]
            for key in gone:
                conn.execute("BEGIN IMMEDIATE")
                self._forget(conn, key)
                conn.execute("COMMIT")
        return len(gone)

    # -- querying

    def query(self, query: str, paths: Sequence[Path], *, max_results: int) -> list[IndexedHit]:
        """The best chunks of ``paths`` for ``query`` (call :meth:`refresh` first).

        BM25 is computed here over the chunks of ``paths`` only (FTS5's own ranking would count
        every file in the index), with FTS5's tokenizer and stemmer for both sides.
        """
        words = query_terms(query)
        if not words or not paths:
            return []
        selected = json.dumps([str(p) for p in paths])
        with closing(self._connect()) as conn:
            conn.execute("INSERT INTO temp.query (text) VALUES (?)", (" ".join(words),))
            terms = [t for (t,) in conn.execute("SELECT term FROM temp.query_terms ORDER BY term")]
            meta = {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT id, path, start_line, end_line, tokens FROM chunk_meta "
                    "WHERE path IN (SELECT value FROM json_each(?))",
                    (selected,),
                )
            }
            if not meta:
                return []
            average = sum(m[3] for m in meta.values()) / len(meta)
            scores: dict[int, float] = {}
            for term in terms:
                counts = {
                    doc: tf
                    for doc, tf in conn.execute(
                        "SELECT doc, count(*) FROM chunk_terms WHERE term = ? GROUP BY doc",
                        (term,),
                    )
                    if doc in meta
                }
                idf = math.log(1 + (len(meta) - len(counts) + 0.5) / (len(counts) + 0.5))
                for doc, tf in counts.items():
                    norm = tf + _K1 * (1 - _B + _B * meta[doc][3] / average)
                    scores[doc] = scores.get(doc, 0.0) + idf * tf * (_K1 + 1) / norm
            ranked = sorted(
                scores.items(), key=lambda item: (-round(item[1], 4), meta[item[0]][0:2])
            )[:max_results]
            texts = dict(
                conn.execute(
                    "SELECT rowid, text FROM chunks WHERE rowid IN "
                    "(SELECT value FROM json_each(?))",
                    (json.dumps([doc for doc, _ in ranked]),),
                ).fetchall()
            )
        return [
            IndexedHit(
                path=Path(meta[doc][0]),
                score=round(score, 4),
                start_line=meta[doc][1],
                end_line=meta[doc][2],
                text=texts.get(doc, ""),
            )
            for doc, score in ranked
        ]


def _reason(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
