"""Tests for dwf.dsl.yaml_source: safe YAML loading with positions and limits."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dwf.dsl import yaml_source
from dwf.dsl.yaml_source import (
    MAX_BYTES,
    MAX_DEPTH,
    Mark,
    SourceDocument,
    from_mapping,
    load_yaml,
    load_yaml_file,
)
from dwf.errors import Diagnostic, WorkflowLoadError

_PARSERS = [pytest.param(yaml.BaseLoader, id="python-parser")]
if hasattr(yaml, "CBaseLoader"):
    _PARSERS.insert(0, pytest.param(yaml.CBaseLoader, id="libyaml"))


@pytest.fixture(scope="module", params=_PARSERS, autouse=True)
def parser(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Runs every test with libyaml and with PyYAML's pure-Python parser: both must agree."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(yaml_source, "_PARSER", request.param)
        yield request.param


def load_error(source: str | bytes) -> Diagnostic:
    with pytest.raises(WorkflowLoadError) as info:
        load_yaml(source, file="wf.yml")
    [diagnostic] = info.value.diagnostics
    assert diagnostic.file == "wf.yml"
    return diagnostic


WORKFLOW = """\
id: order
name: Order processing
version: "1.0"
inputs:
  amount: {type: number, required: true}
steps:
  - id: start
    type: start
    next: charge
  - id: charge
    type: call
    service: payments
    retry_delay: 1.5
    on_error: refund
    next: done
  - id: done
    type: end
"""


def big_workflow(steps: int) -> str:
    lines = ["id: big", "name: Big", "steps:"]
    for i in range(steps):
        lines += [
            f"  - id: s{i}",
            "    type: call",
            f"    service: svc{i}",
            "    input: {x: $input.x, y: [1, 2, 'three']}",
            "    retry_delay: 1.5",
            f"    next: s{i + 1}",
        ]
    return "\n".join(lines) + "\n"


# --- scalars -----------------------------------------------------------------------------------


def test_yes_no_on_off_stay_strings_as_keys_and_values() -> None:
    data = load_yaml("on: yes\noff: no\ny: n\nflag: On\n").data
    assert data == {"on": "yes", "off": "no", "y": "n", "flag": "On"}


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False)],
)
def test_only_the_three_spellings_of_true_and_false_are_booleans(text: str, value: bool) -> None:
    assert load_yaml(f"a: {text}").data == {"a": value}


def test_mixed_case_booleans_stay_strings() -> None:
    assert load_yaml("a: tRuE").data == {"a": "tRuE"}


@pytest.mark.parametrize("text", ["null", "Null", "NULL", "~", ""])
def test_null_spellings_and_empty_values_are_none(text: str) -> None:
    assert load_yaml(f"a: {text}\n").data == {"a": None}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-12", -12),
        ("+7", 7),
        ("0x1F", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("-.5", -0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
    ],
)
def test_numbers_follow_the_yaml_1_2_core_schema(text: str, value: float) -> None:
    loaded = load_yaml(f"a: {text}").data["a"]
    assert loaded == value
    assert type(loaded) is type(value)


@pytest.mark.parametrize(
    "text", ["007", "0755", "1:30", "190:20:30", "1_000", "0b101", "1e", ".", "12abc"]
)
def test_leading_zeros_sexagesimal_and_underscored_numbers_stay_strings(text: str) -> None:
    assert load_yaml(f"a: {text}").data == {"a": text}


@pytest.mark.parametrize("text", ["2024-01-31", "2024-01-31T10:00:00Z", "2001-12-14 21:59:43.10"])
def test_dates_and_timestamps_stay_the_original_string(text: str) -> None:
    assert load_yaml(f"at: {text}").data == {"at": text}


def test_quoted_block_and_str_tagged_scalars_stay_strings() -> None:
    text = "a: '1'\nb: \"true\"\nc: !!str 12\nd: ! null\ne: |\n  3\nf: >-\n  yes\n"
    assert load_yaml(text).data == {
        "a": "1",
        "b": "true",
        "c": "12",
        "d": "null",
        "e": "3\n",
        "f": "yes",
    }


@pytest.mark.parametrize("text", [".inf", "-.Inf", "+.INF", ".nan", ".NaN", "1e999", "-1e400"])
def test_infinity_and_nan_are_refused_because_workflows_are_json(text: str) -> None:
    diagnostic = load_error(f"a: {text}")
    assert (diagnostic.line, diagnostic.column) == (1, 4)
    assert "quote it" in diagnostic.message


def test_an_integer_with_more_digits_than_python_converts_is_refused() -> None:
    diagnostic = load_error("a: " + "9" * 5000)
    assert "too large" in diagnostic.message


@pytest.mark.parametrize(
    "tag",
    ["!!python/object/apply:os.system", "!!python/name:os.system", "!custom", "!!timestamp",
     "!!binary", "!!int", "!!float", "!!set", "!<tag:example.com,2000:app/foo>"],
)  # fmt: skip
def test_tags_other_than_str_map_and_seq_are_refused(tag: str) -> None:
    diagnostic = load_error(f"steps:\n  x: {tag} value\n")
    assert "unsupported tag" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (2, 6)


def test_python_object_tags_on_collections_are_refused() -> None:
    diagnostic = load_error("a: !!python/object/new:os.system [echo hi]\n")
    assert "unsupported tag '!!python/object/new:os.system'" in diagnostic.message


def test_map_and_seq_tags_are_accepted() -> None:
    assert load_yaml("a: !!map {b: !!seq [1]}").data == {"a": {"b": [1]}}


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "described"),
    [("1: x", "integer 1"), ("true: x", "boolean true"), ("1.5: x", "float 1.5"), ("~: x", "null")],
)
def test_keys_that_are_not_strings_are_refused_with_a_quoting_hint(
    text: str, described: str
) -> None:
    diagnostic = load_error(f"a:\n  {text}\n")
    assert diagnostic.message.startswith(f"mapping keys must be strings, got {described}")
    assert "quote it" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (2, 3)


@pytest.mark.parametrize("text", ["? [a, b]\n: x\n", "{[a]: x}", "? {a: 1}\n: x\n"])
def test_collections_as_keys_are_refused(text: str) -> None:
    assert "mapping keys must be strings" in load_error(text).message


def test_a_duplicate_key_is_reported_at_its_second_occurrence() -> None:
    text = "steps:\n  - id: a\n    next: b\n    type: call\n    next: c\n"
    diagnostic = load_error(text)
    assert diagnostic.message.startswith("duplicate key 'next' (first defined at line 3)")
    assert (diagnostic.line, diagnostic.column) == (5, 5)


def test_a_quoted_key_duplicates_the_same_plain_key() -> None:
    assert "duplicate key 'id'" in load_error("id: a\n'id': b\n").message


def test_the_same_key_in_different_mappings_is_fine() -> None:
    assert load_yaml("a: {id: 1}\nb: {id: 2}").data == {"a": {"id": 1}, "b": {"id": 2}}


# --- positions ---------------------------------------------------------------------------------


def test_every_value_is_marked_with_its_line_and_column() -> None:
    doc = load_yaml(WORKFLOW, file="order.yml")
    assert doc.file == "order.yml"
    assert doc.text == WORKFLOW
    assert doc.mark(()) == Mark(1, 1)
    assert doc.mark(("steps",)) == Mark(7, 3)
    assert doc.mark(("steps", 1)) == Mark(10, 5)
    assert doc.mark(("steps", 1, "retry_delay")) == Mark(13, 18)
    assert doc.mark(("inputs", "amount", "required")) == Mark(5, 36)


def test_key_marks_point_at_the_key_of_the_entry() -> None:
    doc = load_yaml(WORKFLOW)
    assert doc.key_mark(("steps", 1, "retry_delay")) == Mark(13, 5)
    assert doc.key_mark(("inputs", "amount", "type")) == Mark(5, 12)
    assert doc.key_mark(("steps",)) == Mark(6, 1)


def test_missing_paths_fall_back_to_the_nearest_marked_ancestor() -> None:
    doc = load_yaml(WORKFLOW)
    assert doc.mark(("steps", 1, "no_such_key", 3)) == Mark(10, 5)
    assert doc.key_mark(("steps", 1)) == Mark(10, 5)  # list items have no key
    assert doc.key_mark(("steps", 1, "unknown")) == Mark(10, 5)


def test_every_marked_path_exists_in_the_data() -> None:
    doc = load_yaml(WORKFLOW + "defaults: &d {retry: 2}\nextra:\n  <<: *d\n  copy: *d\n")
    for path in [*doc.marks, *doc.key_marks]:
        node = doc.data
        for part in path:
            node = node[part]


def test_columns_count_characters_not_bytes() -> None:
    doc = load_yaml("naïve: [ünï, x]\n".encode())
    assert doc.mark(("naïve", 1)) == Mark(1, 14)


def test_a_byte_order_mark_is_accepted_and_does_not_shift_columns() -> None:
    doc = load_yaml(b"\xef\xbb\xbfa: 1\n")
    assert doc.data == {"a": 1}
    assert doc.mark(("a",)) == Mark(1, 4)
    assert load_yaml("\ufeffa: 1").mark(("a",)) == Mark(1, 4)


# --- anchors, aliases and merges ---------------------------------------------------------------


def test_an_alias_is_an_independent_copy_of_the_anchored_value() -> None:
    doc = load_yaml("a: &x {retry: [1, 2]}\nb: *x\n")
    assert doc.data["a"] == doc.data["b"] == {"retry": [1, 2]}
    doc.data["b"]["retry"].append(3)
    assert doc.data["a"] == {"retry": [1, 2]}


def test_values_inside_an_alias_are_marked_at_the_alias() -> None:
    doc = load_yaml("a: &x {retry: 1}\nb:\n  c: *x\n")
    assert doc.mark(("b", "c")) == Mark(3, 6)
    assert doc.mark(("b", "c", "retry")) == Mark(3, 6)
    assert doc.mark(("a", "retry")) == Mark(1, 15)


def test_an_alias_can_be_a_key_when_it_names_a_string() -> None:
    assert load_yaml("a: &k name\n*k : 1\n").data == {"a": "name", "name": 1}


def test_an_alias_naming_a_mapping_cannot_be_a_key() -> None:
    assert "got a mapping" in load_error("a: &k {x: 1}\n*k : 1\n").message


def test_an_alias_without_an_anchor_is_refused() -> None:
    diagnostic = load_error("a: 1\nb: *nope\n")
    assert "alias '*nope' has no anchor" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (2, 4)


@pytest.mark.parametrize("text", ["a: &x [1, *x]", "a: &x {b: {c: *x}}", "&x [*x]"])
def test_a_recursive_alias_is_refused(text: str) -> None:
    assert "recursive aliases are not allowed" in load_error(text).message


def test_an_anchor_redefined_inside_itself_is_used_by_later_aliases() -> None:
    assert load_yaml("a: &x [&x 1, *x]\nb: *x\n").data == {"a": [1, 1], "b": [1, 1]}


def test_a_billion_laughs_document_is_refused_quickly() -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    started = time.perf_counter()
    diagnostic = load_error("\n".join(lines))
    assert time.perf_counter() - started < 5
    assert "expands to more than 1,000,000 nodes through aliases" in diagnostic.message
    assert diagnostic.line is not None
    assert diagnostic.line <= 9


def test_a_document_with_too_many_plain_nodes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_source, "MAX_NODES", 10)
    diagnostic = load_error("[" + ", ".join(["1"] * 20) + "]")
    assert diagnostic.message == "the document expands to more than 10 nodes"


def test_merge_keys_keep_own_keys_first_then_earlier_merged_mappings() -> None:
    text = (
        "a: &a {retry: 1, timeout: 5}\n"
        "b: &b {retry: 2, on_error: x}\n"
        "step:\n"
        "  timeout: 9\n"
        "  <<: [*a, *b]\n"
    )
    step = load_yaml(text).data["step"]
    assert step == {"timeout": 9, "retry": 1, "on_error": "x"}
    assert list(step) == ["timeout", "retry", "on_error"]


def test_merged_entries_are_marked_at_the_merge_value() -> None:
    doc = load_yaml("base: &b {retry: 1}\nstep:\n  id: x\n  <<: *b\n")
    assert doc.data["step"] == {"id": "x", "retry": 1}
    assert doc.mark(("step", "retry")) == Mark(4, 7)
    assert doc.key_mark(("step", "retry")) == Mark(4, 7)
    assert not any("<<" in path for path in doc.marks)


def test_an_inline_mapping_can_be_merged() -> None:
    assert load_yaml("a:\n  <<: {x: 1}\n  y: 2\n").data == {"a": {"y": 2, "x": 1}}


@pytest.mark.parametrize("value", ["1", "[1, 2]", "[]", "text"])
def test_merging_something_other_than_mappings_is_refused(value: str) -> None:
    diagnostic = load_error(f"a:\n  <<: {value}\n")
    assert "'<<' merges a mapping or a list of mappings" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (2, 7)


def test_two_merge_keys_in_one_mapping_are_refused() -> None:
    diagnostic = load_error("a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n")
    assert "duplicate merge key" in diagnostic.message
    assert diagnostic.line == 4


def test_a_quoted_merge_key_is_an_ordinary_key() -> None:
    assert load_yaml("'<<': 1").data == {"<<": 1}


# --- depth and size limits ---------------------------------------------------------------------


def test_nesting_up_to_the_limit_loads() -> None:
    doc = load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert doc.data is not None


def test_flow_nesting_beyond_the_limit_is_refused_at_the_offending_bracket() -> None:
    diagnostic = load_error("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert "nested more than 100 levels" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (1, MAX_DEPTH + 1)


def test_block_nesting_beyond_the_limit_is_refused() -> None:
    text = "".join("  " * level + "a:\n" for level in range(MAX_DEPTH + 1)) + "  " * 101 + "b: 1\n"
    diagnostic = load_error(text)
    assert "nested more than 100 levels" in diagnostic.message
    assert diagnostic.line == MAX_DEPTH + 1


def test_extremely_deep_flow_nesting_is_refused_without_a_recursion_error() -> None:
    assert "nest" in load_error("[" * 100_000).message


def test_an_alias_that_nests_the_document_too_deeply_is_refused() -> None:
    text = "a: &x " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 50 + "*x" + "]" * 50 + "\n"
    diagnostic = load_error(text)
    assert "nested more than 100 levels" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (2, 54)


def test_a_recursion_error_is_reported_as_too_deep_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    def overflow(self: object) -> None:
        raise RecursionError

    monkeypatch.setattr(yaml_source._Builder, "document", overflow)
    assert "nested more than 100 levels" in load_error("a: 1").message


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.yml"
    big.write_bytes(b"# padding\n" * (1024 * 1024))  # 10 MB

    def refuse_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(yaml_source, "open", refuse_open, raising=False)
    with pytest.raises(WorkflowLoadError) as info:
        load_yaml_file(big)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.file == str(big)
    assert "10,485,760 bytes, more than the 4,194,304-byte limit" in diagnostic.message


def test_text_larger_than_the_limit_is_refused() -> None:
    assert "byte limit" in load_error(b"#" * (MAX_BYTES + 1)).message
    assert "byte limit" in load_error("é" * (MAX_BYTES // 2 + 1)).message


def test_two_thousand_steps_load_in_well_under_a_few_seconds() -> None:
    text = big_workflow(2000)
    started = time.perf_counter()
    doc = load_yaml(text)
    assert time.perf_counter() - started < 5
    assert len(doc.data["steps"]) == 2000
    assert doc.key_mark(("steps", 1999, "retry_delay")) == Mark(3 + 1999 * 6 + 5, 5)


# --- documents, encodings and syntax -----------------------------------------------------------


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "--- \n...\n", "\n\n"])
def test_an_empty_document_has_no_data(text: str) -> None:
    assert load_yaml(text).data is None


def test_several_documents_in_one_stream_are_refused() -> None:
    diagnostic = load_error("id: a\n---\nid: b\n")
    assert diagnostic.message.startswith("expected one YAML document, found several")
    assert diagnostic.line == 2


def test_an_explicit_document_end_is_still_one_document() -> None:
    assert load_yaml("---\nid: a\n...\n").data == {"id": "a"}


def test_invalid_utf8_is_reported_with_its_byte_offset() -> None:
    diagnostic = load_error(b"id: a\nname: caf\xc3\xa9 \xff\n")
    assert "not valid UTF-8" in diagnostic.message
    assert "byte 0xff at byte offset 18" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (2, 12)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\ufffe"])
def test_control_characters_are_reported_with_their_position(char: str) -> None:
    diagnostic = load_error(f"id: a\nname: b{char}c\n")
    assert "control characters are not allowed" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (2, 8)


def test_a_source_that_is_not_text_is_refused() -> None:
    with pytest.raises(WorkflowLoadError, match="str or bytes, got int"):
        load_yaml(42)  # type: ignore[arg-type]


def test_a_syntax_error_is_located_and_explained() -> None:
    diagnostic = load_error("id: a\nname: Order: urgent\n")
    assert diagnostic.message.startswith("invalid YAML: mapping values are not allowed")
    assert "put the value in quotes" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (2, 12)


def test_tab_indentation_gets_a_hint() -> None:
    diagnostic = load_error("steps:\n\t- id: a\n")
    assert "replace the tab with spaces" in diagnostic.message
    assert diagnostic.line == 2


def test_a_tab_inside_a_value_gets_a_quoting_hint() -> None:
    diagnostic = load_error("a: x\ty: b\n")
    assert "quote" in diagnostic.message.split(";")[-1]


def test_an_unclosed_quote_is_reported() -> None:
    diagnostic = load_error("id: 'abc\nname: x\n")
    assert diagnostic.message.startswith("invalid YAML: ")
    assert diagnostic.line is not None


def test_load_errors_survive_a_json_round_trip() -> None:
    with pytest.raises(WorkflowLoadError) as info:
        load_yaml("a: 1\na: 2\n", file="wf.yml")
    data = json.loads(json.dumps(info.value.to_dict()))
    assert data["diagnostics"][0]["line"] == 2
    assert str(info.value).startswith("wf.yml:2:1: duplicate key 'a'")


# --- files ----------------------------------------------------------------------------------------


def test_load_yaml_file_names_the_file_as_given(tmp_path: Path) -> None:
    path = tmp_path / "order.yml"
    path.write_bytes(b"\xef\xbb\xbf" + WORKFLOW.encode())
    doc = load_yaml_file(path)
    assert doc.file == str(path)
    assert doc.data["id"] == "order"
    assert load_yaml_file(str(path)).file == str(path)


def test_a_missing_file_is_reported_without_a_raw_os_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "x.yml")
    with pytest.raises(WorkflowLoadError) as info:
        load_yaml_file(missing)
    assert str(info.value) == f"cannot read '{missing}': No such file or directory"


def test_a_directory_cannot_be_read_as_a_workflow(tmp_path: Path) -> None:
    with pytest.raises(WorkflowLoadError, match="cannot read"):
        load_yaml_file(tmp_path)


def test_errors_in_a_file_carry_its_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("a: [\n")
    with pytest.raises(WorkflowLoadError) as info:
        load_yaml_file(path)
    assert info.value.diagnostics[0].file == str(path)


# --- data given in Python ----------------------------------------------------------------------


class Kind(enum.StrEnum):
    CALL = "call"


class Count(enum.IntEnum):
    THREE = 3


def test_from_mapping_deep_copies_into_plain_types() -> None:
    given = {"steps": ({"id": "a", "type": Kind.CALL, "retry": Count.THREE, "x": 1.5},)}
    doc = from_mapping(given)
    assert doc.data == {"steps": [{"id": "a", "type": "call", "retry": 3, "x": 1.5}]}
    step = doc.data["steps"][0]
    assert type(step["type"]) is str
    assert type(step["retry"]) is int
    assert doc.marks == {}
    assert doc.mark(("steps", 0)) is None
    assert doc.file is None
    assert doc.text is None
    given["steps"][0]["id"] = "changed"
    assert step["id"] == "a"


def test_from_mapping_refuses_keys_that_are_not_strings() -> None:
    with pytest.raises(WorkflowLoadError) as info:
        from_mapping({"steps": [{1: "x"}]})
    assert str(info.value) == "mapping keys must be strings, got integer 1 (at steps[0])"


@pytest.mark.parametrize(
    ("value", "words"),
    [(date(2024, 1, 1), "unsupported value date"), ({1, 2}, "unsupported value set"),
     (float("nan"), "nan is not a JSON number"), (b"x", "unsupported value bytes")],
)  # fmt: skip
def test_from_mapping_refuses_values_that_are_not_json_like(value: object, words: str) -> None:
    with pytest.raises(WorkflowLoadError) as info:
        from_mapping({"inputs": {"when": value}})
    assert words in str(info.value)
    assert "(at inputs.when)" in str(info.value)


def test_from_mapping_refuses_data_that_contains_itself() -> None:
    data: dict[str, Any] = {"id": "a"}
    data["self"] = data
    with pytest.raises(WorkflowLoadError, match="nested more than 100 levels"):
        from_mapping(data)


def test_from_mapping_refuses_something_that_is_not_a_mapping() -> None:
    with pytest.raises(WorkflowLoadError, match="must be a mapping, got list"):
        from_mapping([1, 2])  # type: ignore[arg-type]


def test_a_source_document_can_be_built_by_hand() -> None:
    doc = SourceDocument({"a": 1}, {("a",): Mark(3, 4)})
    assert doc.key_mark(("a",)) == Mark(3, 4)
    assert doc.mark(("b",)) is None


# --- properties --------------------------------------------------------------------------------

_YAML_CHARS = st.sampled_from(list(":-[]{}&*!|>'\"#%@`,?<=~\t\n \\.0123456789abcdeyTN\x00\x85"))
_ANY_CHAR = st.one_of(_YAML_CHARS, st.characters())
_MUTATION = st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0), _ANY_CHAR)


def assert_loads_or_refuses(source: str | bytes) -> None:
    try:
        doc = load_yaml(source, file="fuzz.yml")
    except WorkflowLoadError as exc:
        for diagnostic in exc.diagnostics:
            assert diagnostic.line is None or diagnostic.line >= 1
            assert diagnostic.column is None or diagnostic.column >= 1
        return
    json.dumps(doc.data, allow_nan=False)  # plain, JSON-compatible data
    for path in doc.marks:
        node = doc.data
        for part in path:
            node = node[part]


_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.text(_ANY_CHAR))
def test_random_text_loads_or_raises_only_workflow_load_error(text: str) -> None:
    assert_loads_or_refuses(text)


@_FUZZ
@given(st.binary())
def test_random_bytes_load_or_raise_only_workflow_load_error(data: bytes) -> None:
    assert_loads_or_refuses(data)


@_FUZZ
@given(st.lists(_MUTATION, min_size=1, max_size=8))
def test_mutated_workflows_load_or_raise_only_workflow_load_error(
    mutations: list[tuple[str, int, str]],
) -> None:
    text = WORKFLOW + "defaults: &d {retry: 2, tags: [a, b]}\nextra:\n  <<: *d\n  copy: *d\n"
    for operation, position, char in mutations:
        at = position % (len(text) + 1)
        if operation == "insert":
            text = text[:at] + char + text[at:]
        elif operation == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at + 1 :]
    assert_loads_or_refuses(text)
