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
