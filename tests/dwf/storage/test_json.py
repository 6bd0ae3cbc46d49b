"""Encoding stored values: the quick path agrees with the checked one, or leaves it to it."""

from __future__ import annotations

import enum
import json
from collections import OrderedDict
from typing import Any

import pytest

from dwf.errors import StoreError
from dwf.storage._json import encode, encode_map, quick_encode


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


VALID: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    10**30,
    1.5,
    -0.0,
    1e300,
    "",
    "plain",
    'quote " and \\ and \n',
    "ünïcödé and emoji 🎉",
    "lone \ud800 surrogate",
    [],
    {},
    [1, "a", None, [2.5, {"k": "ü"}]],
    {"a": {"b": [1, 2, {"c": None}]}, "ü": "\ud83d"},
    (1, 2),
    Colour.RED,
    Size.BIG,
    OrderedDict(a=1),
    {"nested": [Colour.RED, (Size.BIG,)]},
]


def reference(value: Any) -> str:
    """What a stored value's text must be: compact JSON, UTF-8 unless that cannot be."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text


@pytest.mark.parametrize("value", VALID, ids=lambda value: repr(value)[:40])
def test_valid_values_encode_as_compact_json_by_either_path(value: Any) -> None:
    quick = quick_encode(value)
    assert quick is None or quick == reference(value)
    assert encode(value, "variable 'v'", "v") == reference(value)
    assert json.loads(encode(value, "variable 'v'", "v")) == json.loads(reference(value))


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), {1: "int key"}, {"a": [object()]}, {1, 2}, 10**5000, b"bytes"],
    ids=lambda value: repr(value)[:40] if not isinstance(value, int) else "a huge int",
)
def test_values_that_are_not_json_are_left_to_the_checked_path_which_names_them(
    value: Any,
) -> None:
    assert quick_encode(value) is None
    with pytest.raises(StoreError, match="variable 'when'"):
        encode(value, "variable 'when'", "when")
    with pytest.raises(StoreError, match="variable 'when'"):
        encode_map({"ok": 1, "when": value}, "variable")


def test_encode_map_keeps_the_order_and_refuses_names_that_are_not_strings() -> None:
    assert encode_map({"b": 1, "a": "x", Colour.RED: [1]}, "variable") == [
        ("b", "1"),
        ("a", '"x"'),
        ("red", "[1]"),
    ]
    with pytest.raises(StoreError, match="variable names must be strings"):
        encode_map({1: "x"}, "variable")


def test_a_checkpoint_encodes_the_value_a_run_ends_with_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The end step's output is also the `result` variable and the execution's output.
    from dwf.storage import _json, _rows
    from dwf.storage.base import AuditEntry, Checkpoint, Status

    result = {f"v{i}": "x" * 100 for i in range(50)}
    encoded: list[Any] = []

    def counting(value: Any) -> str | None:
        encoded.append(value)
        return quick_encode(value)

    monkeypatch.setattr(_json, "quick_encode", counting)
    monkeypatch.setattr(_rows, "quick_encode", counting)
    entry = AuditEntry("ex-1", "end", "end", "end", "completed", 1.0, 2.0, output=result)
    row = _rows.checkpoint_row(
        Checkpoint(
            execution_id="ex-1",
            owner="me",
            status=Status.COMPLETED,
            position=[],
            set_variables={"result": result, "other": {"n": 1}},
            entries=[entry],
            output=result,
            set_output=True,
        ),
        lambda: 5.0,
    )
    assert sum(value is result for value in encoded) == 1  # for the entry
    assert {"n": 1} in encoded  # the other variable: encoded as always
    text = reference(result)
    assert row.entries[0].output == text
    assert row.set_variables == [("result", text), ("other", '{"n":1}')]
    assert row.fields["output"] == text


def test_a_step_output_holding_the_long_values_it_sets_reuses_their_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # assign outputs what it sets: the long string is encoded once, as the variable.
    from dwf.storage import _json, _rows
    from dwf.storage.base import AuditEntry, Checkpoint, Status

    long_text = "ünï " + "x" * 500
    output = {"text": long_text, "n": 1, "short": "s"}
    seen: list[Any] = []

    def counting(value: Any) -> str | None:
        seen.append(value)
        return quick_encode(value)

    monkeypatch.setattr(_json, "quick_encode", counting)
    whole: list[Any] = []
    encode_json = _json._encode_json

    def encoding_whole(value: Any) -> str:
        whole.append(value)
        return encode_json(value)

    monkeypatch.setattr(_json, "_encode_json", encoding_whole)
    entry = AuditEntry("ex-1", "a", "a", "assign", "completed", 1.0, 2.0, output=output)
    row = _rows.checkpoint_row(
        Checkpoint(
            execution_id="ex-1",
            owner="me",
            status=Status.RUNNING,
            position=["a"],
            set_variables={"text": long_text, "n": 1},
            entries=[entry],
        ),
        lambda: 5.0,
    )
    assert sum(value is long_text for value in seen) == 1
    assert output not in whole  # made of the parts' texts, not encoded as a whole
    assert row.entries[0].output == reference(output)
    assert row.set_variables == [("text", reference(long_text)), ("n", "1")]


@pytest.mark.parametrize(
    "output",
    [
        {"text": "x" * 100},
        {"a": 1, "text": "x" * 100, "nested": {"k": ["y" * 80]}},
        {"ünï": "x" * 100},  # a key that is not ASCII: encoded as a whole
        {"bad": float("nan"), "text": "x" * 100},  # not JSON: left to the checked path
        ["x" * 100],
    ],
    ids=["one", "mixed", "non-ascii key", "not json", "list"],
)
def test_an_output_made_of_known_texts_is_what_encoding_it_gives(output: Any) -> None:
    from dwf.storage._json import encode_known

    encoded: dict[int, str] = {}
    values = output.values() if isinstance(output, dict) else output
    encode_map({str(i): v for i, v in enumerate(values) if v == v}, "variable", encoded)
    text = encode_known(output, encoded)
    if isinstance(output, dict) and any(v != v for v in output.values()):
        assert text is None
    else:
        assert text == reference(output)
