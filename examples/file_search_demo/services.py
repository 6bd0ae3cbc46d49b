"""The file search demo's one service: a summary line for the passages found."""

from __future__ import annotations

from typing import Any


class Docs:
    """Turns search results into text for people."""

    @staticmethod
    def summarize(query: str, results: list[dict[str, Any]]) -> str:
        if not results:
            return f"Nothing in the docs matches '{query}'."
        best = results[0]
        files = sorted({r["file"] for r in results})
        return (
            f"{len(results)} passage(s) in {len(files)} file(s) match '{query}'; the best is "
            f"{best['file']} line {best['line_number']}: {best['snippet']}"
        )
