"""The examples of docs/ai.md marked *runnable* run offline and print what the doc says.

A runnable example is a ``python`` block after ``<!-- runnable: title -->``, followed by a
``text`` block with its output; ``<!-- file: name -->`` before a block writes that file first.
(The first example of the doc is run by ``test_agent_loop.py``.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "ai.md"
TEXT = DOC.read_text(encoding="utf-8")
FILES = dict(re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", TEXT, re.DOTALL))
EXAMPLES = re.findall(
    r"<!-- runnable: (.+?) -->\n```python\n(.*?)```\n\n```text\n(.*?)```", TEXT, re.DOTALL
)


def test_the_doc_has_its_runnable_examples() -> None:
    assert [title for title, _, _ in EXAMPLES] == [
        "guardrails on an agent",
        "file search as an agent tool",
        "agents with MCP tools",
    ]
    assert list(FILES) == ["inventory_server.py"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [pytest.param(code, expected, id=title) for title, code, expected in EXAMPLES],
)
def test_a_runnable_example_prints_what_the_doc_says(
    code: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, content in FILES.items():
        (tmp_path / name).write_text(content)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_ai_example"})
    assert capsys.readouterr().out == expected
